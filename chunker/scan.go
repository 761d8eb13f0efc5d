package chunker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// runBytes is how much one worker reads with a single ReadAt (at least one
// block). Runs above 1 MiB measured slower on cold reads, since a worker
// hashes only after its whole read returns (BenchmarkBuildRunSize, see
// doc.go). Workers hold one run buffer each. A variable only so that
// benchmark can vary it.
var runBytes = 1 << 20

// blockFunc is called once per block, concurrently from several workers
// but never twice for the same block. data is only valid during the call;
// zero says whether it is all zeros.
type blockFunc func(block int, data []byte, zero bool)

// scan reads [0, size) of r in runs of whole blocks on GOMAXPROCS workers,
// each taking the next unread run, and calls fn for every block. It stops
// at the first read error or when ctx is done.
func scan(ctx context.Context, r io.ReaderAt, size int64, bs int, fn blockFunc) error {
	if size == 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("chunker: scan of an empty disk stopped: %w", err)
		}
		return nil
	}
	run := int64(max(bs, runBytes/bs*bs))
	runs := (size-1)/run + 1
	workers := int64(runtime.GOMAXPROCS(0))
	workers = min(workers, runs)
	zeros := make([]byte, bs)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		errOnce sync.Once
		readErr error
	)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, run)
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= runs {
					return
				}
				off := k * run
				p := buf[:min(run, size-off)]
				if err := readFull(r, p, off); err != nil {
					errOnce.Do(func() { readErr = err })
					cancel()
					return
				}
				first := int(off / int64(bs))
				for j := 0; j < len(p); j += bs {
					blk := p[j:min(j+bs, len(p))]
					fn(first+j/bs, blk, bytes.Equal(blk, zeros[:len(blk)]))
				}
			}
		}()
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("chunker: scan of %d bytes stopped: %w", size, err)
	}
	return nil
}

// readFull reads exactly len(p) bytes at off. io.ReaderAt may return
// io.EOF together with a full read at the end of the disk; that is success.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) && (err == nil || errors.Is(err, io.EOF)) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: got %d of %d bytes at offset %d; check the disk size passed in", ErrShortRead, n, len(p), off)
	}
	return fmt.Errorf("chunker: read %d bytes at offset %d: %w", len(p), off, err)
}
