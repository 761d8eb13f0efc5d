package chunker

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzUnmarshal: any input either decodes to a map that re-encodes to the
// same bytes and diffs clean against itself, or fails with one of the
// package's sentinels. Each input is also tried with its trailing checksum
// recomputed, since random mutations almost never pass CRC-32C and would
// leave the field checks behind it unexplored.
// Run with go test -fuzz FuzzUnmarshal -fuzzminimizetime 5s (the checksum
// makes minimizing an interesting input slow).
func FuzzUnmarshal(f *testing.F) {
	for _, v := range vectors {
		b := encode(f, build(f, disk(v.seed, v.size, v.bs, v.zeros...), v.bs))
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	mixed := encode(f, build(f, disk(12, 128*4096+1, 4096, 0, 63, 64, 65, 127, 128), 4096))
	f.Add(mixed)
	f.Add(resum(append(bytes.Clone(mixed[:32]), 0xff, 0, 0, 0, 0)))
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		if len(b) >= headerSize+trailer {
			checkDecode(t, resum(bytes.Clone(b)))
		}
	})
}

func checkDecode(t *testing.T, b []byte) {
	m, err := Unmarshal(b)
	if err != nil {
		if m != nil {
			t.Fatalf("Unmarshal returned a map with error %v", err)
		}
		for _, s := range []error{ErrCorrupt, ErrVersion, ErrUnknownHash} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("Unmarshal error %v wraps no sentinel", err)
	}
	again, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary of a decoded map: %v", err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
	}
	if r, err := Diff(m, m); err != nil || len(r) != 0 {
		t.Fatalf("Diff(m, m) = %v, %v", r, err)
	}
}
