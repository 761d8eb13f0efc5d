package azblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/asr-project/asr/replica/target"
)

func TestLimits(t *testing.T) {
	cs := azurite(t)
	tg := openAzurite(t, cs, testContainer(t, cs), "", testOptions())
	ctx := t.Context()
	const size = 8 << 20
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		off  int64
		n    int
	}{
		{"5 MiB write", 0, 5 << 20},
		{"unaligned offset", 256, 512},
		{"unaligned length", 0, 1000},
		{"past the end", size - 512, 1024},
		{"onto the footer", size, 512},
		{"negative offset", -512, 512},
	} {
		if err := tg.WritePages(ctx, "d", c.off, bytes.Repeat([]byte{1}, c.n)); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("WritePages %s: error %v, want ErrInvalid", c.what, err)
		}
	}
	if rs, err := tg.Ranges(ctx, "d", ""); err != nil || len(rs) != 0 {
		t.Errorf("refused writes left ranges %v, %v", rs, err)
	}
	for _, s := range []int64{maxBlobSize, maxBlobSize + target.SizeUnit, 1 << 62} {
		if err := tg.CreateDisk(ctx, "big", s); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("CreateDisk(%d): error %v, want ErrInvalid", s, err)
		}
	}
	// The largest disk Azure allows: 8 TiB less 1 MiB, plus the footer.
	const most = maxBlobSize - target.SizeUnit
	if err := tg.CreateDisk(ctx, "big", most); err != nil {
		t.Fatalf("CreateDisk(8 TiB - 1 MiB): %v", err)
	}
	last := bytes.Repeat([]byte{9}, 512)
	if err := tg.WritePages(ctx, "big", most-512, last); err != nil {
		t.Fatalf("write the last page of the largest disk: %v", err)
	}
	got := make([]byte, 512)
	if err := tg.ReadAt(ctx, "big", "", got, most-512); err != nil || !bytes.Equal(got, last) {
		t.Fatalf("read the last page back: %v", err)
	}
	if err := tg.DeleteDisk(ctx, "big"); err != nil {
		t.Fatal(err)
	}
}

// TestNoSnapshotWrite pins that a snapshot cannot be addressed by a write:
// WritePages takes a disk name and no snapshot name.
func TestNoSnapshotWrite(t *testing.T) {
	m, _ := reflect.TypeFor[target.Target]().MethodByName("WritePages")
	want := []reflect.Type{reflect.TypeFor[context.Context](), reflect.TypeFor[string](), reflect.TypeFor[int64](), reflect.TypeFor[[]byte]()}
	if m.Type.NumIn() != len(want) {
		t.Fatalf("WritePages has %d parameters, want %d (no snapshot)", m.Type.NumIn(), len(want))
	}
	for i, w := range want {
		if m.Type.In(i) != w {
			t.Errorf("WritePages parameter %d is %v, want %v", i, m.Type.In(i), w)
		}
	}
}

// downloadVHD saves a disk's whole blob, footer included, to a file.
func downloadVHD(t *testing.T, tg *Target, disk string, size int64) string {
	t.Helper()
	p := make([]byte, size+footerSize)
	if err := tg.read(t.Context(), tg.pageBlob(disk).BlobClient(), p, 0); err != nil {
		t.Fatalf("download %s: %v", disk, err)
	}
	path := filepath.Join(t.TempDir(), disk+".vhd")
	if err := os.WriteFile(path, p, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFooterOnBlob(t *testing.T) {
	cs := azurite(t)
	tg := openAzurite(t, cs, testContainer(t, cs), "p", testOptions())
	ctx := t.Context()
	const size = 2 << 20
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	if got := qemuVirtualSize(t, downloadVHD(t, tg, "d", size)); got != size {
		t.Errorf("qemu-img reads virtual size %d, want %d", got, size)
	}

	// A create cut off before its footer is finished by the next CreateDisk.
	_, err := tg.pageBlob("cut").Create(ctx, size+footerSize, &pageblob.CreateOptions{
		Metadata: map[string]*string{metaSize: to.Ptr("2097152")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.CreateDisk(ctx, "cut", size); err != nil {
		t.Fatalf("CreateDisk over a footerless disk: %v", err)
	}
	if got := qemuVirtualSize(t, downloadVHD(t, tg, "cut", size)); got != size {
		t.Errorf("after resume qemu-img reads virtual size %d, want %d", got, size)
	}

	// A page blob asr did not make is refused, not guessed at.
	if _, err := tg.pageBlob("alien").Create(ctx, size, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.DiskSize(ctx, "alien"); !errors.Is(err, target.ErrInvalid) || !errors.Is(err, errNotAsrDisk) {
		t.Errorf("DiskSize of a foreign blob: error %v, want ErrInvalid", err)
	}
}

// TestServerCopy runs the Copy Blob path that real Azure uses (Azurite
// targets use clientCopy) and checks the copy's bytes and footer.
func TestServerCopy(t *testing.T) {
	cs := azurite(t)
	tg := openAzurite(t, cs, testContainer(t, cs), "", testOptions())
	tg.clientCopy = false
	ctx := t.Context()
	const size = 2 << 20
	want := bytes.Repeat([]byte{0xAB}, 64<<10)
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	if err := tg.WritePages(ctx, "d", 1<<20, want); err != nil {
		t.Fatal(err)
	}
	if err := tg.Snapshot(ctx, "d", "s"); err != nil {
		t.Fatal(err)
	}
	if err := tg.WritePages(ctx, "d", 1<<20, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if err := tg.CopyFromSnapshot(ctx, "d", "s", "c"); err != nil {
		t.Fatalf("CopyFromSnapshot: %v", err)
	}
	got := make([]byte, len(want))
	if err := tg.ReadAt(ctx, "c", "", got, 1<<20); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the copy does not hold the snapshot's bytes (%v)", err)
	}
	if n, err := tg.DiskSize(ctx, "c"); err != nil || n != size {
		t.Fatalf("DiskSize of the copy = %d, %v", n, err)
	}
	src, dst := make([]byte, footerSize), make([]byte, footerSize)
	_ = tg.read(ctx, tg.pageBlob("d").BlobClient(), src, size)
	_ = tg.read(ctx, tg.pageBlob("c").BlobClient(), dst, size)
	if string(dst[:8]) != "conectix" || bytes.Equal(src[68:84], dst[68:84]) {
		t.Errorf("the copy's footer is missing or shares the source's unique id")
	}
	if err := tg.CopyFromSnapshot(ctx, "d", "s", "c"); !errors.Is(err, target.ErrExists) {
		t.Errorf("server copy onto an existing disk: error %v, want ErrExists", err)
	}
}

// TestSnapshotRace: two handles name the same snapshot at once; both
// succeed, each name is listed once, and exactly the named blob snapshots
// remain (the losers' are removed, a shared one is kept).
func TestSnapshotRace(t *testing.T) {
	cs := azurite(t)
	cont := testContainer(t, cs)
	a := openAzurite(t, cs, cont, "", testOptions())
	b := openAzurite(t, cs, cont, "", testOptions())
	ctx := t.Context()
	if err := a.CreateDisk(ctx, "d", 1<<20); err != nil {
		t.Fatal(err)
	}
	for round := range 4 {
		name := "s" + string(rune('0'+round))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, tg := range []*Target{a, b} {
			wg.Go(func() { errs[i] = tg.Snapshot(ctx, "d", name) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: Snapshot errors %v, %v", round, errs[0], errs[1])
		}
	}
	recs, err := b.snapshotRecords(ctx, "d")
	if err != nil || len(recs) != 4 {
		t.Fatalf("records = %v, %v; want 4", recs, err)
	}
	named := map[string]bool{}
	for _, r := range recs {
		named[r.ts] = true
	}
	if got := blobSnapshots(t, a, "d"); !reflect.DeepEqual(got, named) {
		t.Errorf("blob snapshots %v, named %v: the losers' were not removed, or a named one was", got, named)
	}
}

// blobSnapshots lists the Azure snapshot timestamps of a disk's blob.
func blobSnapshots(t *testing.T, tg *Target, disk string) map[string]bool {
	t.Helper()
	prefix := tg.diskBlob(disk)
	pager := tg.cont.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, Include: container.ListBlobsInclude{Snapshots: true}})
	snaps := map[string]bool{}
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Snapshot != nil && *it.Snapshot != "" {
				snaps[*it.Snapshot] = true
			}
		}
	}
	return snaps
}

// TestSnapshotSameInstant: Azurite stamps snapshots to the millisecond, so
// two names taken at once (concurrently here) may share one blob snapshot;
// deleting one name must leave the other readable.
func TestSnapshotSameInstant(t *testing.T) {
	cs := azurite(t)
	tg := openAzurite(t, cs, testContainer(t, cs), "", testOptions())
	ctx := t.Context()
	if err := tg.CreateDisk(ctx, "d", 1<<20); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0x5A}, 512)
	if err := tg.WritePages(ctx, "d", 0, want); err != nil {
		t.Fatal(err)
	}
	shared := 0
	for i := range 8 {
		x, y := fmt.Sprintf("x%d", i), fmt.Sprintf("y%d", i)
		var ex, ey error
		var wg sync.WaitGroup
		wg.Go(func() { ex = tg.Snapshot(ctx, "d", x) })
		wg.Go(func() { ey = tg.Snapshot(ctx, "d", y) })
		wg.Wait()
		if err := errors.Join(ex, ey); err != nil {
			t.Fatal(err)
		}
		tx, _, _ := tg.resolve(ctx, "d", x)
		ty, _, _ := tg.resolve(ctx, "d", y)
		if tx == ty {
			shared++
		}
		if err := tg.DeleteSnapshot(ctx, "d", x); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 512)
		if err := tg.ReadAt(ctx, "d", y, got, 0); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("round %d: snapshot %s after deleting %s (same stamp: %v): %v", i, y, x, tx == ty, err)
		}
	}
	t.Logf("%d of 8 pairs shared a timestamp", shared)
}

// TestZeroWrites: zero pages written over data take effect, and the
// cleared ranges leave the page list (the blob stays sparse).
func TestZeroWrites(t *testing.T) {
	cs := azurite(t)
	tg := openAzurite(t, cs, testContainer(t, cs), "", testOptions())
	ctx := t.Context()
	const size = 8 << 20
	if err := tg.CreateDisk(ctx, "d", size); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(4, target.MaxWrite)
	for _, off := range []int64{0, target.MaxWrite} {
		if err := tg.WritePages(ctx, "d", off, data); err != nil {
			t.Fatal(err)
		}
	}
	// All zero: one Clear Pages over the first 4 MiB.
	if err := tg.WritePages(ctx, "d", 0, make([]byte, target.MaxWrite)); err != nil {
		t.Fatal(err)
	}
	// Mixed: data, a 1 MiB zero run, data, in the second 4 MiB.
	mixed := randomBytes(5, target.MaxWrite)
	clear(mixed[1<<20 : 2<<20])
	if err := tg.WritePages(ctx, "d", target.MaxWrite, mixed); err != nil {
		t.Fatal(err)
	}
	want := append(make([]byte, target.MaxWrite), mixed...)
	got := make([]byte, size)
	if err := tg.ReadAt(ctx, "d", "", got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("zero writes did not take effect (first difference at %d)", firstDiffAt(got, want))
	}
	rs, err := tg.Ranges(ctx, "d", "")
	wantRs := []target.Extent{{Off: 4 << 20, Len: 1 << 20}, {Off: 6 << 20, Len: 2 << 20}}
	if err != nil || !reflect.DeepEqual(rs, wantRs) {
		t.Errorf("Ranges = %v, %v; want %v", rs, err, wantRs)
	}
}
