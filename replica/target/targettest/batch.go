package targettest

import (
	"bytes"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

// batch builds a WriteBatch of random pages and applies it to a model.
type batch struct {
	ws  []target.Write
	rng *mrand.Rand
}

// add appends a write of n random bytes at off.
func (b *batch) add(off, n int64) {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(b.rng.Uint32() | 1) // never zero: a dropped write must show
	}
	b.ws = append(b.ws, target.Write{Off: off, P: p})
}

// apply writes the batch to the disk and, once it succeeded, to the model.
func (b *batch) apply(t *testing.T, e *env, disk string, model []byte) {
	t.Helper()
	if err := e.WriteBatch(e.ctx, disk, b.ws); err != nil {
		t.Fatalf("WriteBatch(%s, %d writes): %v", disk, len(b.ws), err)
	}
	for _, w := range b.ws {
		copy(model[w.Off:], w.P)
	}
}

// testWriteBatch writes one batch of writes of many shapes, not in offset
// order: a whole MaxWrite, single pages, neighbours sharing an edge, and
// writes within one 64 KiB block apart from each other.
func testWriteBatch(t *testing.T, e *env) {
	const size = 2 * target.MaxWrite // room for a MaxWrite beside the rest
	d := e.name("d")
	mustCreate(t, e, d, size)
	model := make([]byte, size)
	b := &batch{rng: mrand.New(mrand.NewPCG(40, 41))}
	b.add(target.MaxWrite, target.MaxWrite)                 // exactly MaxWrite, ends at the end
	b.add(0, target.PageSize)                               // the first page
	b.add(3*target.PageSize, target.PageSize)               // a page apart from it
	b.add(64*1024, 8192)                                    // adjacent to the next two
	b.add(64*1024+8192, target.PageSize)                    //
	b.add(64*1024+8192+target.PageSize, 128*1024)           // across a 64 KiB edge
	b.add(target.MaxWrite-target.PageSize, target.PageSize) // touches the MaxWrite write
	b.add(target.SizeUnit-4096, 8192)                       // across a MiB
	b.add(5*target.PageSize, target.PageSize)               // out of order, same block
	b.apply(t, e, d, model)
	checkEqual(t, e, d, "", model)
	checkRanges(t, e, d, "", model)

	// A second batch over part of the first replaces exactly its bytes.
	b = &batch{rng: b.rng}
	b.add(2*target.PageSize, 2*target.PageSize) // over the page at 3*PageSize
	b.add(target.MaxWrite+target.PageSize, target.PageSize)
	b.apply(t, e, d, model)
	checkEqual(t, e, d, "", model)

	if err := e.WriteBatch(e.ctx, d, nil); err != nil {
		t.Fatalf("WriteBatch of no writes: %v", err)
	}
	checkEqual(t, e, d, "", model)
}

// testWriteBatchRules sends batches that break one rule each after valid
// writes: a MaxWrite (so a wrapper that passes a batch on in parts has sent
// a part already) and more pages than a backend sends at once (so one
// that writes concurrently has finished some). Each batch must be
// ErrInvalid and write nothing.
func testWriteBatchRules(t *testing.T, e *env) {
	const size = 2 * target.MaxWrite
	d := e.name("d")
	mustCreate(t, e, d, size)
	model := make([]byte, size)
	b := &batch{rng: mrand.New(mrand.NewPCG(42, 43))}
	b.add(0, 64*1024) // old content the refused batches must not touch
	b.add(size-64*1024, 64*1024)
	b.apply(t, e, d, model)

	page := func(off int64) target.Write {
		return target.Write{Off: off, P: bytes.Repeat([]byte{7}, target.PageSize)}
	}
	big := target.Write{Off: target.SizeUnit, P: bytes.Repeat([]byte{9}, target.MaxWrite)} // [1 MiB, 5 MiB)
	valid := func(bad ...target.Write) []target.Write {
		ws := []target.Write{big}
		for i := range int64(32) {
			ws = append(ws, page(64*1024+i*4096))
		}
		return append(ws, bad...)
	}
	bad := []struct {
		what string
		ws   []target.Write
	}{
		{"two overlapping writes", valid(page(0), target.Write{Off: 0, P: make([]byte, 2*target.PageSize)})},
		{"overlapping by one page", valid(page(8192), target.Write{Off: 4096, P: bytes.Repeat([]byte{8}, 4096+target.PageSize)})},
		{"overlapping the MaxWrite", valid(page(0), page(2*target.SizeUnit))},
		{"a misaligned offset", valid(page(0), page(100))},
		{"a misaligned length", valid(page(0), target.Write{Off: 8192, P: make([]byte, 100)})},
		{"a negative offset", valid(page(0), page(-target.PageSize))},
		{"a write over MaxWrite", append(valid()[1:], target.Write{Off: target.SizeUnit, P: make([]byte, target.MaxWrite+target.PageSize)})},
		{"a write past the end", valid(page(0), target.Write{Off: size - target.PageSize, P: make([]byte, 2*target.PageSize)})},
		{"a write at the end", valid(page(0), page(size))},
	}
	for _, c := range bad {
		wantErr(t, "WriteBatch with "+c.what, e.WriteBatch(e.ctx, d, c.ws), target.ErrInvalid)
		if i := firstDiff(readAll(t, e, d, "", size), model); i >= 0 {
			t.Fatalf("WriteBatch with %s was refused but changed byte %d", c.what, i)
		}
	}
	wantErr(t, "WriteBatch to a missing disk", e.WriteBatch(e.ctx, e.name("missing"), []target.Write{page(0)}), target.ErrNotFound)
}

// testWriteBatchSnapshot overwrites many blocks in one batch after a
// snapshot: whole blocks, parts of blocks and pages inside one block, so a
// copy-on-write backend must save every block the batch touches, once.
func testWriteBatchSnapshot(t *testing.T, e *env) {
	h := newHistory(t, e, 44)
	h.writes(t, e, 0)
	s1, s2 := e.name("s1"), e.name("s2")
	h.snapshot(t, e, s1)
	h.writes(t, e, 1)
	h.snapshot(t, e, s2)

	b := &batch{rng: h.rng}
	const block = 64 * 1024
	for off := int64(0); off+block <= diskSize; off += 5 * block { // every fifth block, partly
		switch off / (5 * block) % 4 {
		case 0:
			b.add(off, block) // a whole block
		case 1:
			b.add(off+target.PageSize, 4096) // inside a block
		case 2:
			b.add(off+block-8192, 16384) // across a block edge
		case 3:
			b.add(off, target.PageSize) // two pages of one block
			b.add(off+block-target.PageSize, target.PageSize)
		}
	}
	b.add(diskSize-target.PageSize, target.PageSize) // the last page
	slices.Reverse(b.ws)                             // not in offset order
	b.apply(t, e, h.disk, h.live)
	h.check(t, e)

	// A second batch after the first touches saved and unsaved blocks.
	b = &batch{rng: h.rng}
	b.add(0, 3*block)
	b.add(10*block+target.PageSize, target.PageSize)
	b.add(diskSize-2*block, block)
	b.apply(t, e, h.disk, h.live)
	h.check(t, e)

	// The older snapshot goes; the newer one and the disk read as before.
	h.deleteSnapshot(t, e, s1)
	h.check(t, e)
	b = &batch{rng: h.rng}
	b.add(block, block)
	b.add(20*block+4096, 4096)
	b.apply(t, e, h.disk, h.live)
	h.check(t, e)
}
