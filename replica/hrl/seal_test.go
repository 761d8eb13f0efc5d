package hrl

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
)

func TestSealKeepsTheDurablePrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hrl")
	prev := uuid.New()
	w, err := Create(path, Options{PreviousID: prev})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 { // more than a block's worth, then a flush
		if err := w.Write(int64(i)*512, bytes.Repeat([]byte{byte(i)}, 512)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 130 { // a full block written and a partial one pending
		if err := w.Write(1<<20+int64(i)*512, bytes.Repeat([]byte{0xee}, 512)); err != nil {
			t.Fatal(err)
		}
	}
	w.f.Close() // the process dies: no close, no flush
	if id, closed, err := Peek(path); err != nil || closed || id != w.ID() {
		t.Fatalf("Peek of the open log: %v %v %v", id, closed, err)
	}
	l, tail, err := Seal(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 200 || tail == 0 || !l.Closed {
		t.Fatalf("sealed %d entries, cut %d bytes, closed %v; want 200, some, true", len(l.Entries), tail, l.Closed)
	}
	o, err := Open(path)
	if err != nil {
		t.Fatalf("a sealed log must open: %v", err)
	}
	if len(o.Entries) != 200 || o.ID != w.ID() || o.PreviousID != prev {
		t.Fatalf("reopened: %d entries, IDs %s/%s", len(o.Entries), o.ID, o.PreviousID)
	}
	fi, _ := os.Stat(path)
	if fi.Size() != o.End {
		t.Fatalf("file has %d bytes past EOLLocation %d", fi.Size()-o.End, o.End)
	}
	// Idempotent: sealing a sealed log only validates it.
	if again, tail, err := Seal(path, nil); err != nil || tail != 0 || len(again.Entries) != 200 {
		t.Fatalf("second Seal: %d entries, tail %d, %v", len(again.Entries), tail, err)
	}
}

func TestSealRefusesADamagedHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.hrl")
	w, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(0, make([]byte, 512))
	w.Flush()
	w.f.Close()
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, hTotalEntries)
	f.Close()
	if _, _, err := Seal(path, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	if _, _, err := Peek(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Peek: got %v, want ErrCorrupt", err)
	}
}
