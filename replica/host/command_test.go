package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asr-project/asr/replica/hook"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == hook.GuardArg {
		os.Exit(hook.Guard(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func TestCommandDriverFillsTemplatesQuoted(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	h, err := New(Config{Driver: "command", TestNetwork: "iso net",
		Start:    `for a in {vm} {disks} {dir} "{network}"; do echo "[$a]"; done >` + out,
		Shutdown: `echo down {vm} >` + out})
	if err != nil {
		t.Fatal(err)
	}
	vm := VM{Name: "web", Disks: []string{dir + "/my disk.vhd", dir + "/it's.vhd"}, Dir: dir, Network: "br0"}
	if err := h.Start(context.Background(), vm, true); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want := "[web]\n[" + dir + "/my disk.vhd]\n[" + dir + "/it's.vhd]\n[" + dir + "]\n['iso net']\n"
	if string(got) != want {
		t.Errorf("start ran with\n%s\nwant\n%s", got, want)
	}
	if err := h.Remove(context.Background(), vm); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); string(got) != "down web\n" {
		t.Errorf("remove ran %q, want the shutdown template", got)
	}
	if err := h.Freeze(context.Background(), vm); !errors.Is(err, ErrUnsupported) {
		t.Errorf("freeze with no template: %v, want ErrUnsupported", err)
	}
}

func TestCommandDriverTimesOut(t *testing.T) {
	h, _ := New(Config{Driver: "command", Shutdown: "sleep 30", Timeout: 200 * time.Millisecond})
	if err := h.Shutdown(context.Background(), VM{Name: "web"}); !errors.Is(err, hook.ErrTimeout) {
		t.Fatalf("a shutdown past the timeout: %v, want hook.ErrTimeout", err)
	}
}

func TestUnknownDriverIsAConfigError(t *testing.T) {
	if _, err := New(Config{Driver: "vmware"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("driver vmware: %v, want ErrConfig", err)
	}
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background(), VM{}, false); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("no driver: %v, want ErrUnsupported", err)
	}
}
