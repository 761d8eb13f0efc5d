package azblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/targettest"
)

// TestMain raises the default -test.parallel: the Azurite tests wait on
// the emulator far more than they use a CPU, and with GOMAXPROCS=2 the
// conformance suite would otherwise take twice as long.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}

// azurite returns the connection string of the emulator the tests use.
// Without one they skip, except under CI where a missing emulator is a
// broken setup.
func azurite(t *testing.T) string {
	t.Helper()
	cs := os.Getenv(EnvConnectionString)
	if cs == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is unset under CI: .ci/run must start Azurite with eval \"$(.ci/azurite/azurite.sh start)\"", EnvConnectionString)
		}
		t.Skipf("%s is unset: run eval \"$(.ci/azurite/azurite.sh start)\" to test against Azurite", EnvConnectionString)
	}
	return cs
}

// testContainer names a fresh container and deletes it when the test ends.
func testContainer(t testing.TB, cs string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "asrtest-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c, err := container.NewClientFromConnectionString(cs, name, nil)
		if err != nil {
			t.Errorf("cleanup client for container %s: %v", name, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = c.Delete(ctx, nil)
	})
	return name
}

// accountOf reads AccountName from a connection string.
func accountOf(t testing.TB, cs string) string {
	t.Helper()
	f, err := parseConnectionString(cs)
	if err != nil || f["accountname"] == "" {
		t.Fatalf("%s has no AccountName", EnvConnectionString)
	}
	return f["accountname"]
}

func lookupCS(cs string) target.Config {
	return target.Config{Lookup: func(k string) string {
		if k == EnvConnectionString {
			return cs
		}
		return ""
	}}
}

// testOptions retry fast so fault tests stay short.
func testOptions() options {
	o := defaultOptions()
	o.retry = policy.RetryOptions{MaxRetries: 5, TryTimeout: 10 * time.Second, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}
	return o
}

// openAzurite opens azblob://ACCOUNT/CONTAINER/PREFIX on the emulator.
func openAzurite(t testing.TB, cs, cont, prefix string, o options) *Target {
	t.Helper()
	u, err := url.Parse("azblob://" + accountOf(t, cs) + "/" + cont + "/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := open(t.Context(), u, lookupCS(cs), o)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// withEndpoint points a connection string's BlobEndpoint elsewhere.
func withEndpoint(t *testing.T, cs, endpoint string) string {
	t.Helper()
	var parts []string
	for _, p := range strings.Split(cs, ";") {
		if p != "" && !strings.HasPrefix(strings.ToLower(p), "blobendpoint=") {
			parts = append(parts, p)
		}
	}
	return strings.Join(append(parts, "BlobEndpoint="+endpoint), ";")
}

func TestConformance(t *testing.T) {
	cs := azurite(t)
	cont := testContainer(t, cs)
	account := accountOf(t, cs)
	// Through target.Open, so the scheme registration is covered too. All
	// subtests share the container, as real deployments do.
	targettest.Run(t, func(t *testing.T) target.Target {
		tg, err := target.Open(t.Context(), "azblob://"+account+"/"+cont+"/conformance", lookupCS(cs))
		if err != nil {
			t.Fatalf("target.Open: %v", err)
		}
		return tg
	})
}

// TestOpenWrongKey: a key the service refuses is ErrAuth at Open, and the
// error does not show it.
func TestOpenWrongKey(t *testing.T) {
	cs := azurite(t)
	f, _ := parseConnectionString(cs)
	bad := "AccountName=" + f["accountname"] + ";AccountKey=" + fakeKey + ";BlobEndpoint=" + f["blobendpoint"]
	u, _ := url.Parse("azblob://" + f["accountname"] + "/" + testContainer(t, cs))
	o := testOptions()
	o.retry.MaxRetries = -1
	_, err := open(t.Context(), u, lookupCS(bad), o)
	if !errors.Is(err, target.ErrAuth) {
		t.Fatalf("Open with a wrong key: error %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), fakeKey) {
		t.Errorf("the error shows the key: %v", err)
	}
}

// TestAzuriteCopyBug pins the emulator bug that clientCopy works around: a
// server-side copy shares its page list with the source snapshot, so a
// write to the copy shows in the snapshot. If this test fails, the pinned
// Azurite fixed it and clientCopy can go.
func TestAzuriteCopyBug(t *testing.T) {
	cs := azurite(t)
	tg := openAzurite(t, cs, testContainer(t, cs), "", testOptions())
	if !tg.clientCopy {
		t.Skip("not an emulator on loopback")
	}
	tg.clientCopy = false
	ctx := t.Context()
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, 512) }
	for _, step := range []error{
		tg.CreateDisk(ctx, "d", 1<<20),
		tg.WritePages(ctx, "d", 0, page(0xAA)),
		tg.Snapshot(ctx, "d", "s"),
		tg.CopyFromSnapshot(ctx, "d", "s", "c"),
		tg.WritePages(ctx, "c", 0, page(0xCC)),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	got := make([]byte, 512)
	if err := tg.ReadAt(ctx, "d", "s", got, 0); err != nil {
		t.Fatal(err)
	}
	if got[0] == 0xAA {
		t.Errorf("Azurite's copy no longer shares page lists with its source: remove Target.clientCopy")
	}
}
