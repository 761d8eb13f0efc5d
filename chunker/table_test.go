package chunker

import (
	"bytes"
	"testing"
)

// A table kept block by block must equal, byte for byte once encoded, the
// map built from the disk it describes, through zero/non-zero changes and
// growth.
func TestTableTracksDisk(t *testing.T) {
	const bs = 4096
	size := int64(64 * bs)
	d := disk(7, size, bs, 3, 4, 40)
	tab, err := build(t, d, bs).Table()
	if err != nil {
		t.Fatal(err)
	}
	set := func(i int, b []byte) {
		copy(d[i*bs:], b)
		tab.Set(i, d[i*bs:(i+1)*bs])
	}
	set(3, bytes.Repeat([]byte{9}, bs)) // zero -> data
	set(5, make([]byte, bs))            // data -> zero
	set(6, bytes.Repeat([]byte{1}, bs)) // data -> other data
	same(t, tab.Map(), build(t, d, bs))
	if !tab.Same(6, d[6*bs:7*bs]) || tab.Same(6, d[7*bs:8*bs]) || !tab.Same(5, make([]byte, bs)) {
		t.Fatal("Same disagrees with Set")
	}

	if err := tab.Grow(size+8*bs, nil); err != nil {
		t.Fatal(err)
	}
	d = append(d, make([]byte, 8*bs)...)
	set(66, bytes.Repeat([]byte{2}, bs))
	same(t, tab.Map(), build(t, d, bs))
	if err := tab.Grow(size, nil); err == nil {
		t.Fatal("a table shrank")
	}

	fresh, err := NewTable(int64(len(d)), bs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fresh.Blocks() {
		fresh.Set(i, d[i*bs:(i+1)*bs])
	}
	same(t, fresh.Map(), build(t, d, bs))
}

func same(t *testing.T, a, b *Map) {
	t.Helper()
	ea, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := b.MarshalBinary()
	if !bytes.Equal(ea, eb) {
		r, _ := Diff(a, b)
		t.Fatalf("table and built map differ at %v", r)
	}
}
