package azblob

import (
	"bytes"
	"testing"
)

func TestDbgCopy(t *testing.T) {
	cs := azurite(t)
	cont := testContainer(t, cs)
	tg := openAzurite(t, cs, cont, "", testOptions())
	ctx := t.Context()
	must := func(err error) { t.Helper(); if err != nil { t.Fatal(err) } }
	must(tg.CreateDisk(ctx, "d", 1<<20))
	A := bytes.Repeat([]byte{0xAA}, 4096)
	B := bytes.Repeat([]byte{0xBB}, 4096)
	C := bytes.Repeat([]byte{0xCC}, 4096)
	must(tg.WritePages(ctx, "d", 0, A))
	must(tg.Snapshot(ctx, "d", "s1"))
	must(tg.WritePages(ctx, "d", 0, B))
	must(tg.CopyFromSnapshot(ctx, "d", "s1", "dst"))
	show := func(disk, snap string) {
		p := make([]byte, 4)
		must(tg.ReadAt(ctx, disk, snap, p, 0))
		t.Logf("%s@%s: %x", disk, snap, p)
	}
	show("d", "s1"); show("d", ""); show("dst", "")
	must(tg.WritePages(ctx, "dst", 0, C))
	show("d", "s1"); show("d", ""); show("dst", "")
	must(tg.WritePages(ctx, "d", 0, A[:512]))
	show("d", "s1"); show("d", ""); show("dst", "")
}
