package targettest

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

func testCreateDisk(t *testing.T, e *env) {
	d := e.name("d")
	if _, err := e.DiskSize(e.ctx, d); !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("DiskSize of a missing disk: error %v, want ErrNotFound", err)
	}
	for _, size := range []int64{0, -target.SizeUnit, target.SizeUnit + target.PageSize, target.SizeUnit / 2} {
		wantErr(t, "CreateDisk size "+strconv.FormatInt(size, 10), e.CreateDisk(e.ctx, e.name("bad"), size), target.ErrInvalid)
	}
	mustCreate(t, e, d, diskSize)
	if n, err := e.DiskSize(e.ctx, d); err != nil || n != diskSize {
		t.Fatalf("DiskSize = %d, %v; want %d", n, err, diskSize)
	}
	model := make([]byte, diskSize)
	rng := mrand.New(mrand.NewPCG(1, 2))
	write(t, e, d, model, rng, target.SizeUnit, 8192)

	// Same size again: success, data kept (an interrupted copy resumes).
	if err := e.CreateDisk(e.ctx, d, diskSize); err != nil {
		t.Fatalf("CreateDisk again with the same size: %v", err)
	}
	checkEqual(t, e, d, "", model)
	wantErr(t, "CreateDisk with another size", e.CreateDisk(e.ctx, d, 2*diskSize), target.ErrExists)
	if n, err := e.DiskSize(e.ctx, d); err != nil || n != diskSize {
		t.Fatalf("DiskSize after a refused re-create = %d, %v; want %d", n, err, diskSize)
	}
}

func testWritePagesRules(t *testing.T, e *env) {
	const size = 2 * target.MaxWrite // room to test MaxWrite apart from the end
	d := e.name("d")
	mustCreate(t, e, d, size)
	page := bytes.Repeat([]byte{7}, target.PageSize)
	bad := []struct {
		what string
		off  int64
		p    []byte
	}{
		{"unaligned offset", 100, page},
		{"unaligned length", 0, page[:100]},
		{"negative offset", -target.PageSize, page},
		{"past the end", size - target.PageSize, append(page, page...)},
		{"at the end", size, page},
		{"over MaxWrite", 0, make([]byte, target.MaxWrite+target.PageSize)},
	}
	for _, b := range bad {
		wantErr(t, "WritePages "+b.what, e.WritePages(e.ctx, d, b.off, b.p), target.ErrInvalid)
	}
	checkEqual(t, e, d, "", make([]byte, size)) // refused writes wrote nothing

	model := make([]byte, size)
	rng := mrand.New(mrand.NewPCG(3, 4))
	write(t, e, d, model, rng, 0, target.MaxWrite)                    // exactly MaxWrite
	write(t, e, d, model, rng, size-target.PageSize, target.PageSize) // the last page
	write(t, e, d, model, rng, 3*target.PageSize, target.PageSize)    // rewrite inside
	checkEqual(t, e, d, "", model)
	wantErr(t, "WritePages to a missing disk", e.WritePages(e.ctx, e.name("missing"), 0, page), target.ErrNotFound)
}

func testReadAt(t *testing.T, e *env) {
	d := e.name("d")
	mustCreate(t, e, d, diskSize)
	checkEqual(t, e, d, "", make([]byte, diskSize)) // never written: zeros
	model := make([]byte, diskSize)
	rng := mrand.New(mrand.NewPCG(5, 6))
	write(t, e, d, model, rng, 4096, 3*4096)

	// Unaligned reads inside, across the edge of and outside the written data.
	for _, r := range [][2]int64{{4096 + 100, 1000}, {4000, 300}, {4 * 4096, 700}, {diskSize - 1, 1}, {0, 0}} {
		p := bytes.Repeat([]byte{0xA5}, int(r[1]))
		if err := e.ReadAt(e.ctx, d, "", p, r[0]); err != nil {
			t.Fatalf("ReadAt(off %d, len %d): %v", r[0], r[1], err)
		}
		if !bytes.Equal(p, model[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadAt(off %d, len %d) returned other bytes than written", r[0], r[1])
		}
	}
	wantErr(t, "ReadAt past the end", e.ReadAt(e.ctx, d, "", make([]byte, 20), diskSize-10), target.ErrInvalid)
	wantErr(t, "ReadAt at the end", e.ReadAt(e.ctx, d, "", make([]byte, 1), diskSize), target.ErrInvalid)
	wantErr(t, "ReadAt negative offset", e.ReadAt(e.ctx, d, "", make([]byte, 1), -1), target.ErrInvalid)
	wantErr(t, "ReadAt of a missing disk", e.ReadAt(e.ctx, e.name("missing"), "", make([]byte, 1), 0), target.ErrNotFound)
	wantErr(t, "ReadAt of a missing snapshot", e.ReadAt(e.ctx, d, e.name("nosnap"), make([]byte, 1), 0), target.ErrNotFound)
}

func testRanges(t *testing.T, e *env) {
	d := e.name("d")
	mustCreate(t, e, d, diskSize)
	model := make([]byte, diskSize)
	checkRanges(t, e, d, "", model)
	rng := mrand.New(mrand.NewPCG(7, 8))
	write(t, e, d, model, rng, 0, target.PageSize)
	write(t, e, d, model, rng, 300*1024, 70*1024)
	write(t, e, d, model, rng, 2*target.SizeUnit-4096, 8192) // across a MiB
	write(t, e, d, model, rng, diskSize-target.PageSize, target.PageSize)
	checkRanges(t, e, d, "", model)
	checkEqual(t, e, d, "", model)
	_, err := e.Ranges(e.ctx, e.name("missing"), "")
	wantErr(t, "Ranges of a missing disk", err, target.ErrNotFound)
	_, err = e.Ranges(e.ctx, d, e.name("nosnap"))
	wantErr(t, "Ranges of a missing snapshot", err, target.ErrNotFound)
}

func testDeleteDisk(t *testing.T, e *env) {
	d, s := e.name("d"), e.name("s")
	mustCreate(t, e, d, diskSize)
	model := make([]byte, diskSize)
	rng := mrand.New(mrand.NewPCG(9, 10))
	write(t, e, d, model, rng, 0, 64*1024)
	if err := e.Snapshot(e.ctx, d, s); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	write(t, e, d, model, rng, 0, 64*1024)
	if err := e.DeleteDisk(e.ctx, d); err != nil {
		t.Fatalf("DeleteDisk: %v", err)
	}
	_, err := e.DiskSize(e.ctx, d)
	wantErr(t, "DiskSize after DeleteDisk", err, target.ErrNotFound)
	wantErr(t, "ReadAt of a deleted disk's snapshot", e.ReadAt(e.ctx, d, s, make([]byte, 1), 0), target.ErrNotFound)
	if err := e.DeleteDisk(e.ctx, d); err != nil {
		t.Fatalf("DeleteDisk of a missing disk: %v", err)
	}

	// The same name again is a new, empty disk without the old snapshots.
	mustCreate(t, e, d, diskSize)
	checkEqual(t, e, d, "", make([]byte, diskSize))
	snaps, err := e.Snapshots(e.ctx, d)
	if err != nil {
		t.Fatalf("Snapshots of the re-created disk: %v", err)
	}
	checkList(t, "Snapshots of the re-created disk", snaps, nil)
	wantErr(t, "ReadAt of the old snapshot", e.ReadAt(e.ctx, d, s, make([]byte, 1), 0), target.ErrNotFound)
}
