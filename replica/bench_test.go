package replica

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/asr-project/asr/replica/hook"
	"github.com/asr-project/asr/replica/target"
	_ "github.com/asr-project/asr/replica/target/azblob"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/replica/vhd/qemutest"
	"github.com/asr-project/asr/vault"
)

// benchDisk makes a dynamic VHD of ASR_BENCH_SIZE bytes (default 1 GiB)
// with 40% of its 2 MiB blocks written, once per process.
var benchDiskPath string

func benchDisk(b *testing.B) (string, int64) {
	b.Helper()
	size := int64(1 << 30)
	if s := os.Getenv("ASR_BENCH_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	if benchDiskPath == "" {
		dir, err := os.MkdirTemp("", "asr-bench-")
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(dir, "disk.vhd")
		qemutest.Create(b, p, "dynamic", size)
		for blk := int64(0); blk < size>>21; blk++ {
			if blk%5 < 2 {
				qemutest.Write(b, p, "vpc", blk<<21, 2<<20, byte(blk%251+1))
			}
		}
		benchDiskPath = p
	}
	d, err := vhd.Open(benchDiskPath)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	alloc, _ := d.AllocatedBytes()
	return benchDiskPath, alloc
}

func azuriteConn(b *testing.B) string {
	conn := os.Getenv("AZURE_STORAGE_CONNECTION_STRING")
	if conn == "" {
		b.Skip(`no Azurite: eval "$(.ci/azurite/azurite.sh start)" first`)
	}
	return conn
}

// BenchmarkUploadEngine is asr's initial copy to Azure Blob (Azurite):
// concurrent 4 MiB UploadPages of the non-zero allocated ranges.
func BenchmarkUploadEngine(b *testing.B) {
	azuriteConn(b)
	path, alloc := benchDisk(b)
	b.SetBytes(alloc)
	b.ResetTimer()
	var sent int64
	for i := range b.N {
		f := newBenchFixture(b)
		req := Protect{VM: fmt.Sprintf("vm%d", i), Disks: []string{path},
			Target: fmt.Sprintf("azblob://devstoreaccount1/bench-%d", time.Now().UnixNano())}
		j, err := f.EnableProtection(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		sent = j.Bytes
	}
	b.ReportMetric(float64(sent), "bytes-sent")
	b.ReportMetric(float64(alloc), "bytes-allocated")
}

// BenchmarkUploadNaive is the peer: the SDK's plain UploadPages loop at
// concurrency 1 over the same allocated ranges, zeros included.
func BenchmarkUploadNaive(b *testing.B) {
	conn := azuriteConn(b)
	path, alloc := benchDisk(b)
	d, err := vhd.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	exts, _ := d.Extents()
	b.SetBytes(alloc)
	b.ResetTimer()
	ctx := context.Background()
	buf := make([]byte, 4<<20)
	for range b.N {
		name := fmt.Sprintf("naive-%d", time.Now().UnixNano())
		cc, err := container.NewClientFromConnectionString(conn, name, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cc.Create(ctx, nil); err != nil {
			b.Fatal(err)
		}
		pb, _ := pageblob.NewClientFromConnectionString(conn, name, "disk.vhd", nil)
		if _, err := pb.Create(ctx, vhd.RoundSize(d.Size())+512, nil); err != nil {
			b.Fatal(err)
		}
		for _, e := range exts {
			for off := e.Off; off < e.Off+e.Len; off += int64(len(buf)) {
				n := min(int64(len(buf)), e.Off+e.Len-off)
				d.ReadAt(buf[:n], off)
				_, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(buf[:n])), blob.HTTPRange{Offset: off, Count: n}, nil)
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

func newBenchFixture(b *testing.B) *Engine {
	v, err := vault.Init(filepath.Join(b.TempDir(), "site.db"), "bench", time.Second)
	if err != nil {
		b.Fatal(err)
	}
	v.Update(func(tx *vault.Tx) error { return tx.PutPolicy(NewPolicy(DefaultPolicy)) })
	return &Engine{Vault: v, OpenTarget: func(ctx context.Context, url string) (target.Target, error) {
		return target.Open(ctx, url, target.Config{})
	}}
}

func TestMain(m *testing.M) {
	// Hooks re-execute this binary as their guard.
	if len(os.Args) > 1 && os.Args[1] == hook.GuardArg {
		os.Exit(hook.Guard(os.Args[2:]))
	}
	code := m.Run()
	if benchDiskPath != "" {
		os.RemoveAll(filepath.Dir(benchDiskPath))
	}
	os.Exit(code)
}
