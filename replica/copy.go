package replica

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/image"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/vhd"
	"github.com/asr-project/asr/vault"
)

const (
	// copyWorkers writes run concurrently; reads stay sequential so the
	// source disk sees one stream. Memory is about (copyWorkers+1) chunks.
	copyWorkers = 4
	// zeroGrain is the granularity of zero skipping inside a chunk.
	zeroGrain = 64 << 10
	// saveEvery bounds how much copy work a crash can cost.
	saveEvery = 2 * time.Second
)

// chunk is one piece of the initial copy: at most target.MaxWrite bytes,
// page aligned.
type chunk struct{ off, n int64 }

// copyChunks splits a disk's allocated extents beyond from into chunks
// inside [0, limit), aligned to whole resync blocks so that each chunk
// read gives whole blocks for the replica's checksum map.
func copyChunks(exts []vhd.Extent, from, limit int64) []chunk {
	var out []chunk
	for _, e := range exts {
		a := max(e.Off/blockSize*blockSize, from)
		b := min((e.Off+e.Len+blockSize-1)/blockSize*blockSize, limit)
		if n := len(out); n > 0 && a < out[n-1].off+out[n-1].n {
			a = out[n-1].off + out[n-1].n // extents that share a block
		}
		for a < b {
			// Align chunk ends to MaxWrite so chunks of adjacent extents
			// don't split pages or overlap.
			end := min(b, (a/target.MaxWrite+1)*target.MaxWrite)
			out = append(out, chunk{a, end - a})
			a = end
		}
	}
	return out
}

// copyDisk copies disk i of the item to its replica, skipping unallocated
// and all-zero ranges, and records progress so a rerun resumes. It returns
// the bytes written to the target.
func (e *Engine) copyDisk(ctx context.Context, t target.Target, it *vault.Item, i int, j *job) (int64, error) {
	d := &it.Disks[i]
	path, format := d.Path, DiskFormat(*d)
	if d.Seed != "" {
		path, format = d.Seed, DiskFormat(vault.Disk{Format: d.SeedFormat})
	}
	src, err := image.Open(path, format)
	if err != nil {
		return 0, fmt.Errorf("disk %s: %w", path, err)
	}
	defer src.Close()
	switch {
	case d.Seed != "" && src.Size() > d.Size:
		return 0, fmt.Errorf("seed %s has %d bytes, more than the disk %s (%d): %w", path, src.Size(), d.Path, d.Size, ErrBadData)
	case d.Seed == "" && src.Size() != d.Size:
		return 0, fmt.Errorf("disk %s changed size from %d to %d while protected; disable and enable protection: %w", d.Path, d.Size, src.Size(), ErrBadData)
	}
	if err := t.CreateDisk(ctx, d.Replica, d.ReplicaSize); err != nil {
		return 0, fmt.Errorf("create replica %s: %w", d.Replica, err)
	}
	exts, err := src.Extents()
	if err != nil {
		return 0, fmt.Errorf("disk %s: %w", path, err)
	}
	chunks := copyChunks(exts, d.CopiedTo, d.ReplicaSize)
	// A copy that runs start to end on a remote target also makes the
	// replica's checksum map, from the very bytes it writes.
	var tab *chunker.Table
	if !t.Local() && d.CopiedTo == 0 {
		if tab, err = chunker.NewTable(d.ReplicaSize, blockSize); err != nil {
			return 0, err
		}
	}
	var total int64
	for _, c := range chunks {
		total += c.n
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu      sync.Mutex
		done    = make([]bool, len(chunks))
		next    int // first chunk not known to be done
		moved   int64
		written int64
		saved   = time.Now()
		wg      sync.WaitGroup
		bufs    = make(chan []byte, copyWorkers+1)
		sem     = make(chan struct{}, copyWorkers)
	)
	for range copyWorkers + 1 {
		bufs <- make([]byte, target.MaxWrite)
	}
	// finished marks chunk k done and advances the resume point over the
	// done prefix, saving it now and then.
	finished := func(k int, n int64, p []byte) error {
		mu.Lock()
		defer mu.Unlock()
		done[k] = true
		moved += chunks[k].n
		written += n
		if tab != nil {
			c := chunks[k]
			for off := int64(0); off < c.n; off += blockSize {
				tab.Set(int((c.off+off)/blockSize), p[off:off+blockSize])
			}
		}
		for next < len(chunks) && done[next] {
			next++
		}
		j.progress(moved, total)
		if time.Since(saved) < saveEvery {
			return nil
		}
		saved = time.Now()
		return e.saveCopied(it, i, resumeAt(chunks, next, d.ReplicaSize))
	}
	for k, c := range chunks {
		buf := <-bufs
		p := buf[:c.n]
		if err := readFull(src, p, c.off); err != nil {
			cancel(fmt.Errorf("read disk %s at %d: %w", d.Path, c.off, err))
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { bufs <- buf; <-sem }()
			n, err := writeNonZero(ctx, t, d.Replica, c.off, p)
			if err == nil {
				err = finished(k, n, p)
			}
			if err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		mu.Lock()
		at := resumeAt(chunks, next, d.ReplicaSize)
		mu.Unlock()
		e.saveCopied(it, i, at)
		return written, err
	}
	d.Copied = true
	if tab != nil {
		if d.MapDigest, err = e.storeMap(ctx, t, it.VM, d.Name, tab); err != nil {
			return written, err
		}
	}
	return written, e.saveCopied(it, i, d.ReplicaSize)
}

// resumeAt is where a rerun starts: the first chunk not done, or the end.
func resumeAt(chunks []chunk, next int, end int64) int64 {
	if next < len(chunks) {
		return chunks[next].off
	}
	return end
}

func (e *Engine) saveCopied(it *vault.Item, i int, at int64) error {
	it.Disks[i].CopiedTo = at
	return e.Vault.Update(func(tx *vault.Tx) error { return tx.PutItem(*it) })
}

// readFull reads p at off, zero-filling past the end of the source (the
// replica's size is rounded up to 1 MiB).
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if err == io.EOF || (err == nil && n == len(p)) {
		clear(p[n:])
		return nil
	}
	return err
}

// writeNonZero writes the non-zero runs of p (at zeroGrain granularity) and
// returns the bytes written. The replica starts all zero and a rerun only
// rewrites the same source bytes, so skipping zeros is safe here.
func writeNonZero(ctx context.Context, t target.Target, disk string, off int64, p []byte) (int64, error) {
	var written int64
	start := -1
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		err := t.WritePages(ctx, disk, off+int64(start), p[start:end])
		written += int64(end - start)
		start = -1
		return err
	}
	for g := 0; g < len(p); g += zeroGrain {
		end := min(g+zeroGrain, len(p))
		if vhd.IsZero(p[g:end]) {
			if err := flush(g); err != nil {
				return written, err
			}
		} else if start < 0 {
			start = g
		}
	}
	return written, flush(len(p))
}
