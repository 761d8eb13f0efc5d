package replica

import (
	"context"
	"fmt"
	"os"

	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// markMaps records, before any log of the pending point is applied, that
// each kept checksum map is being brought up to this point. A run that
// dies applying is finished from the same logs, which touch the same
// blocks, so the map it then stores is exact; a point abandoned for a
// resync leaves the mark, and that resync reads the replica back.
func (e *Engine) markMaps(t target.Target, it *vault.Item) error {
	if t.Local() {
		return nil
	}
	changed := false
	for i := range it.Disks {
		d := &it.Disks[i]
		if d.MapDigest != "" && d.MapPoint != it.Pending.Point {
			d.MapPoint, changed = it.Pending.Point, true
		}
	}
	if !changed {
		return nil
	}
	return e.saveItem(it)
}

// updateMap sets, in disk i's checksum map, every block the applied
// extents touch, and stores the map. A block the extents cover whole is
// hashed from the logs; a block they cover in part is read back from the
// replica (the only egress the map costs while replicating). The new
// digest is recorded with the point.
func (e *Engine) updateMap(ctx context.Context, t target.Target, it *vault.Item, i int, files []*os.File, exts []hrl.Extent) error {
	d := &it.Disks[i]
	if len(exts) == 0 {
		d.MapPoint = "" // nothing written: the map stands, and costs no upload
		return nil
	}
	cur := *d
	cur.MapPoint = ""
	tab, _, err := e.loadMap(ctx, t, it.VM, cur)
	if err != nil {
		// Not the map asr wrote: the next resync reads the replica back.
		e.event(it.VM, "disk %s: %v; checksum map dropped", d.Name, err)
		d.MapDigest, d.MapPoint = "", ""
		return nil
	}
	buf := make([]byte, blockSize)
	k0 := 0
	for _, b := range touchedBlocks(exts) {
		a, end := b*blockSize, (b+1)*blockSize
		for k0 < len(exts) && exts[k0].Off+exts[k0].Len <= a {
			k0++
		}
		pos := a // the block is filled from the logs up to pos
		for k := k0; k < len(exts) && exts[k].Off <= pos && pos < end; k++ {
			x := exts[k]
			hi := min(x.Off+x.Len, end)
			if _, err := files[x.Log].ReadAt(buf[pos-a:hi-a], x.FileOff+pos-x.Off); err != nil {
				return fmt.Errorf("read log %s: %w", files[x.Log].Name(), err)
			}
			pos = hi
		}
		if pos < end {
			if err := t.ReadAt(ctx, d.Replica, "", buf, a); err != nil {
				return fmt.Errorf("read replica %s at %d for its checksum map: %w", d.Replica, a, err)
			}
		}
		tab.Set(int(b), buf)
	}
	digest, err := e.storeMap(ctx, t, it.VM, d.Name, tab)
	if err != nil {
		return err
	}
	d.MapDigest, d.MapPoint = digest, ""
	return nil
}

// touchedBlocks lists, ascending, the blocks sorted extents touch.
func touchedBlocks(exts []hrl.Extent) []int64 {
	var out []int64
	for _, x := range exts {
		for b := x.Off / blockSize; b <= (x.Off+x.Len-1)/blockSize; b++ {
			if n := len(out); n == 0 || out[n-1] < b {
				out = append(out, b)
			}
		}
	}
	return out
}
