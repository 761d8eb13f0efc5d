package hrl

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
)

// FuzzOpen feeds arbitrary bytes to the reader (Open's and Salvage's code
// path, on memory instead of a file) and to Coalesce: no panic, no
// allocation beyond what the input's size bounds, and every result must
// point inside the input.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	seed := func(name string, opt Options, ws []write, closeIt bool) {
		opt.Now = clock
		w, err := Create(filepath.Join(dir, name), opt)
		if err != nil {
			f.Fatal(err)
		}
		for _, x := range ws {
			if err := w.Write(x.off, x.data); err != nil {
				f.Fatal(err)
			}
		}
		if closeIt {
			err = w.Close()
		} else {
			err = w.Flush()
			w.f.Close()
		}
		if err != nil {
			f.Fatal(err)
		}
		b := readFile(f, filepath.Join(dir, name))
		if _, _, err := readLog(bytes.NewReader(b), int64(len(b)), name, !closeIt); err != nil {
			f.Fatalf("seed %s does not read back: %v", name, err)
		}
		f.Add(b)
	}
	seed("empty.hrl", Options{MetadataSize: 512}, nil, true)
	seed("three.hrl", Options{MetadataSize: 512, PreviousID: uuid.New()}, smallWrites(3, 20, 1), true)
	seed("blocks.hrl", Options{MetadataSize: 512}, smallWrites(40, 7, 2), true)
	seed("open.hrl", Options{MetadataSize: 512}, smallWrites(5, 9, 3), false)
	f.Add([]byte("msctlog\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		fixed := fixChecksums(append([]byte(nil), data...))
		for _, c := range []struct {
			data    []byte
			salvage bool
		}{{data, false}, {data, true}, {fixed, false}, {fixed, true}} {
			data, salvage := c.data, c.salvage
			l, tail, err := readLog(bytes.NewReader(data), size, "fuzz.hrl", salvage)
			if err != nil {
				if l != nil {
					t.Fatal("a log came back with an error")
				}
				continue
			}
			if l.End > size || tail != size-l.End || tail < 0 {
				t.Fatalf("End %d, tail %d for %d bytes", l.End, tail, size)
			}
			var sum int64
			for _, e := range l.Entries {
				if e.Len < 0 || e.FileOff < HeaderSize || e.FileOff+e.Len > l.End || e.Off < 0 {
					t.Fatalf("entry %+v outside the log (End %d)", e, l.End)
				}
				sum += e.Len
			}
			if sum != l.DataBytes {
				t.Fatalf("DataBytes %d, entries hold %d", l.DataBytes, sum)
			}
			var prev int64 = -1
			for _, x := range Coalesce([]*Log{l, l}) {
				if x.Off < prev || x.Len <= 0 || x.FileOff < HeaderSize || x.FileOff+x.Len > l.End {
					t.Fatalf("extent %+v out of order or outside the log", x)
				}
				prev = x.Off + x.Len
			}
		}
	})
}

// fixChecksums recomputes every checksum the reader would check, following
// the structure the bytes claim, so that mutations get past the checksums
// and exercise the structural checks behind them.
func fixChecksums(b []byte) []byte {
	le := binary.LittleEndian
	if len(b) < HeaderSize {
		return b
	}
	h := parseHeader(b)
	ms := int64(h.MetadataSize)
	end := int64(h.EOL)
	if end == 0 {
		end = int64(h.CurrentSize)
	}
	type blk struct{ off, n int64 }
	var blocks []blk
	if ms >= 512 && ms <= maxMetadataSize && end >= HeaderSize+ms && end <= int64(len(b)) {
		for cur := end - ms; len(blocks) < 1000; {
			p := b[cur : cur+ms]
			n := min(int64(le.Uint32(p[bValid:])), (ms-blockHeaderSize)/entrySize)
			le.PutUint32(p[bChecksum:], checksum(p[:blockHeaderSize], bChecksum))
			blocks = append(blocks, blk{cur, n})
			prev := int64(le.Uint64(p[bPrev:]))
			if prev < ms || prev > cur-HeaderSize {
				break
			}
			cur -= prev
		}
	}
	pos := int64(HeaderSize)
	for i := len(blocks) - 1; i >= 0; i-- {
		bl := blocks[i]
		for k := range bl.n {
			e := b[bl.off+blockHeaderSize+k*entrySize:][:entrySize]
			if n := int64(le.Uint32(e[eDataLength:])); pos+n <= int64(len(b)) {
				le.PutUint32(e[eDataChecksum:], ^byteSum(b[pos:pos+n]))
				pos += n
			}
			le.PutUint32(e[eChecksum:], checksum(e, eChecksum))
		}
		pos = bl.off + ms
	}
	le.PutUint32(b[hChecksum:], checksum(b[:HeaderSize], hChecksum))
	return b
}
