package file

import (
	"testing"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/targettest"
)

func newTarget(t *testing.T) *Target {
	t.Helper()
	tg, err := New(t.TempDir())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tg
}

func TestConformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) target.Target { return newTarget(t) })
}

// TestConformanceShared runs the suite with every subtest on one directory,
// as the Azurite run shares one container.
func TestConformanceShared(t *testing.T) {
	dir := t.TempDir()
	targettest.Run(t, func(t *testing.T) target.Target {
		tg, err := New(dir)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return tg
	})
}
