package hrl

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	path, _ := buildLog(t, dir, "x.hrl", Options{}, nil)
	if _, err := Create(path, Options{}); err == nil {
		t.Fatal("Create over an existing log succeeded")
	}
	for _, ms := range []int{100, 513, 2 << 20} {
		if _, err := Create(filepath.Join(dir, "m.hrl"), Options{MetadataSize: ms}); !errors.Is(err, ErrInvalid) {
			t.Errorf("MetadataSize %d: %v, want ErrInvalid", ms, err)
		}
	}
	// the empty log Create+Close left is valid and holds nothing
	l, err := Open(path)
	if err != nil || len(l.Entries) != 0 || l.End != 8192 || !l.Closed {
		t.Fatalf("empty log: %+v, %v", l, err)
	}
}

func TestWriteArguments(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "a.hrl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(-1, []byte{1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative offset: %v", err)
	}
	if err := w.Write(math.MaxInt64, []byte{1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("offset overflow: %v", err)
	}
	if err := w.Write(0, nil); err != nil || w.DataBytes() != 0 {
		t.Errorf("empty write: %v, %d bytes", err, w.DataBytes())
	}
}

// TestWriteErrorLeavesNotClosed: after an I/O error the writer refuses
// more work and Close must not mark the log closed.
func TestWriteErrorLeavesNotClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.hrl")
	w, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	w.f.Close() // the file goes away under the writer
	if err := w.Write(512, []byte("after")); err == nil {
		t.Fatal("Write on a closed file succeeded")
	}
	if err := w.Flush(); err == nil {
		t.Fatal("Flush after a write error succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a write error succeeded")
	}
	if _, err := Open(path); !errors.Is(err, ErrNotClosed) {
		t.Fatalf("Open: %v, want ErrNotClosed", err)
	}
}

// A write must not wait for a Flush's fsync: the tracker's guest would
// stall for as long as the log's dirty pages take to reach the disk. The
// header the Flush writes counts only what its fsync covered.
func TestWriteDuringFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.hrl")
	w, err := Create(path, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	first, second := bytes.Repeat([]byte{1}, 4096), bytes.Repeat([]byte{2}, 4096)
	if err := w.Write(0, first); err != nil {
		t.Fatal(err)
	}
	inSync, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w.beforeSync = func() { once.Do(func() { close(inSync); <-release }) }
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush() }()
	<-inSync
	wrote := make(chan error, 1)
	go func() { wrote <- w.Write(8192, second) }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("a Write waited for the Flush's fsync")
	}
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	// What the Flush promised: the first write, not the second.
	l, _, err := Salvage(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 1 || l.Entries[0].Off != 0 {
		t.Fatalf("after the Flush the log names %+v, want the first write only", l.Entries)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(path); err != nil || len(l.Entries) != 2 {
		t.Fatalf("closed log: %v entries, %v; want both writes", l, err)
	}
}
