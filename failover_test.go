package main

import (
	"bytes"
	"context"
	"os"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

// recovered VM test|failover REF.vhd... compares the recovery disks of the
// VM's test failover (or its failover), in disk order, with fixed VHDs
// exported from the point: byte for byte over the virtual size. A local
// recovery disk is read as a VHD; one on the target (Azure) through it.
func cmdRecovered(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: recovered VM test|failover REF.vhd...")
	}
	v, err := vault.Open(ts.Getenv("ASR_STATE"), 5*time.Second)
	ts.Check(err)
	var it vault.Item
	ts.Check(v.View(func(tx *vault.Tx) (err error) { it, err = tx.Item(args[0]); return }))
	f := it.Failover
	if args[1] == "test" {
		f = it.Test
	}
	if f == nil || len(f.Disks) != len(args)-2 {
		ts.Fatalf("VM %s has no %s failover with %d disks: %+v", args[0], args[1], len(args)-2, f)
	}
	ctx := context.Background()
	var t target.Target
	for i, d := range f.Disks {
		ref, err := vhd.Open(ts.MkAbs(args[2+i]))
		ts.Check(err)
		defer ref.Close()
		read := func(p []byte, off int64) error { return nil }
		if _, err := os.Stat(d.Path); err == nil {
			got, err := vhd.Open(d.Path)
			ts.Check(err)
			defer got.Close()
			if got.Size() < ref.Size() {
				ts.Fatalf("%s has %d bytes, the point %d", d.Path, got.Size(), ref.Size())
			}
			read = func(p []byte, off int64) error { _, err := got.ReadAt(p, off); return err }
		} else {
			if t == nil {
				t, err = target.Open(ctx, ts.Getenv("TARGET"), target.Config{Lookup: ts.Getenv})
				ts.Check(err)
				defer t.Close()
			}
			read = func(p []byte, off int64) error { return t.ReadAt(ctx, d.Path, "", p, off) }
		}
		a, b := make([]byte, 4<<20), make([]byte, 4<<20)
		for off := int64(0); off < ref.Size(); off += int64(len(a)) {
			n := min(int64(len(a)), ref.Size()-off)
			_, err := ref.ReadAt(a[:n], off)
			ts.Check(err)
			ts.Check(read(b[:n], off))
			if !bytes.Equal(a[:n], b[:n]) {
				if neg {
					return
				}
				ts.Fatalf("recovery disk %s differs from %s in [%d, %d)", d.Path, args[2+i], off, off+n)
			}
		}
	}
	if neg {
		ts.Fatalf("the recovery disks equal the references")
	}
}
