package azblob

import (
	"bytes"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/asr-project/asr/replica/target/internal/footer"
)

func TestLocal(t *testing.T) {
	if (&Target{}).Local() {
		t.Fatal("an azblob target says reading it is as cheap as a local file")
	}
}

// blobTail returns a disk blob's length and its last 512 bytes.
func blobTail(t *testing.T, tg *Target, disk string) (int64, []byte) {
	t.Helper()
	props, err := tg.pageBlob(disk).GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := *props.ContentLength
	ft := make([]byte, footerSize)
	if err := tg.read(t.Context(), tg.pageBlob(disk).BlobClient(), ft, n-footerSize); err != nil {
		t.Fatal(err)
	}
	return n, ft
}

// TestResizeOnBlob checks the blob a resize leaves (length, footer, unique
// id), the recovery of resizes cut short at each step, and a second Target
// whose cached size is stale.
func TestResizeOnBlob(t *testing.T) {
	cs := azurite(t)
	cont := testContainer(t, cs)
	tg := openAzurite(t, cs, cont, "r", testOptions())
	ctx := t.Context()
	const mib = 1 << 20
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	data := bytes.Repeat([]byte{0xC3}, 64<<10)
	must(tg.CreateDisk(ctx, "d", 2*mib))
	must(tg.WritePages(ctx, "d", 2*mib-int64(len(data)), data))
	_, first := blobTail(t, tg, "d")
	id := first[68:84]

	// A second Target caches the old size before the resize.
	other := openAzurite(t, cs, cont, "r", testOptions())
	if n, err := other.DiskSize(ctx, "d"); err != nil || n != 2*mib {
		t.Fatalf("DiskSize = %d, %v", n, err)
	}
	must(tg.ResizeDisk(ctx, "d", 5*mib))
	n, ft := blobTail(t, tg, "d")
	if n != 5*mib+footerSize || !footer.Fits(ft, 5*mib) || !bytes.Equal(ft[68:84], id) {
		t.Fatalf("blob after resize: %d bytes, footer fits %v, same id %v", n, footer.Fits(ft, 5*mib), bytes.Equal(ft[68:84], id))
	}
	must(other.WritePages(ctx, "d", 5*mib-4096, bytes.Repeat([]byte{1}, 4096))) // past its cached size
	if rs, err := other.Ranges(ctx, "d", ""); err != nil || len(rs) == 0 || rs[len(rs)-1].Off+rs[len(rs)-1].Len != 5*mib {
		t.Fatalf("Ranges through a stale cache = %v, %v; want the last range to end at %d", rs, err, 5*mib)
	}

	// Cut short after step 1 (blob resized) and step 2 (new footer): the
	// disk keeps its old size until the retry finishes.
	pb := tg.pageBlob("d")
	_, err := pb.Resize(ctx, 8*mib+footerSize, nil)
	must(err)
	must(tg.putPages(ctx, pb, 8*mib, footer.For(ft, 8*mib)))
	fresh := openAzurite(t, cs, cont, "r", testOptions())
	if n, err := fresh.DiskSize(ctx, "d"); err != nil || n != 5*mib {
		t.Fatalf("DiskSize of a resize cut short = %d, %v; want the old %d", n, err, 5*mib)
	}
	got := make([]byte, len(data))
	must(fresh.ReadAt(ctx, "d", "", got, 2*mib-int64(len(data))))
	if !bytes.Equal(got, data) {
		t.Fatal("a resize cut short changed the data")
	}
	must(fresh.ResizeDisk(ctx, "d", 8*mib))
	zeros := bytes.Repeat([]byte{0xA5}, 3*mib)
	must(fresh.ReadAt(ctx, "d", "", zeros, 5*mib))
	if !bytes.Equal(zeros, make([]byte, 3*mib)) {
		t.Fatal("the region grown by a retried resize is not zeros")
	}

	// Cut short after step 3 of a resize to 10 MiB (old footer cleared),
	// then retried at the size the disk still has: the blob is trimmed and
	// the footer rewritten, with the same id.
	_, err = pb.Resize(ctx, 10*mib+footerSize, nil)
	must(err)
	must(tg.putPages(ctx, pb, 10*mib, footer.For(ft, 10*mib)))
	_, err = pb.ClearPages(ctx, blob.HTTPRange{Offset: 8 * mib, Count: footerSize}, nil)
	must(err)
	must(fresh.ResizeDisk(ctx, "d", 8*mib))
	n, ft = blobTail(t, tg, "d")
	if n != 8*mib+footerSize || !footer.Fits(ft, 8*mib) || !bytes.Equal(ft[68:84], id) {
		t.Fatalf("blob after a same-size retry: %d bytes, footer fits %v, same id %v", n, footer.Fits(ft, 8*mib), bytes.Equal(ft[68:84], id))
	}
	if got := qemuVirtualSize(t, downloadVHD(t, tg, "d", 8*mib)); got != 8*mib {
		t.Errorf("qemu-img reads virtual size %d, want %d", got, 8*mib)
	}
}
