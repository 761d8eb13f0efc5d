package replica

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/zeebo/xxh3"

	"github.com/asr-project/asr/chunker"
	"github.com/asr-project/asr/replica/catalog"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// The replica's checksum map lives beside it on a target that is not
// local (Local() false), so a resync compares the source against it
// instead of reading the replica back. Each version is its own object,
// named by the digest of its bytes, and the vault's Disk.MapDigest names
// the one asr last wrote: a crash between writing a map and recording it
// leaves the recorded one in place. A copy is cached beside the state
// file, so keeping the map current costs an upload per cycle, not a
// download.

func mapPrefix(vm, disk string) string { return catalog.MapPrefix(vm, disk) }

func mapDigest(b []byte) string {
	s := xxh3.Hash128(b).Bytes()
	return hex.EncodeToString(s[:])
}

func (e *Engine) mapCache(vm, disk, digest string) string {
	return filepath.Join(e.Vault.Path()+".maps", vm+"."+disk+"."+digest)
}

// loadMap returns the disk's map as asr last wrote it, and the bytes read
// from the target to get it. A map that is missing or not the recorded
// one is an error that says so; the caller then reads the replica.
func (e *Engine) loadMap(ctx context.Context, t target.Target, vm string, d vault.Disk) (*chunker.Table, int64, error) {
	switch {
	case d.MapDigest == "":
		return nil, 0, errors.New("no checksum map of the replica at the target yet")
	case d.MapPoint != "":
		return nil, 0, fmt.Errorf("applying point %s was interrupted, so the checksum map at the target may be behind the replica", d.MapPoint)
	}
	var read int64
	b, err := os.ReadFile(e.mapCache(vm, d.Name, d.MapDigest))
	if err != nil || mapDigest(b) != d.MapDigest {
		if b, err = t.GetObject(ctx, mapPrefix(vm, d.Name)+d.MapDigest); errors.Is(err, target.ErrNotFound) {
			return nil, 0, errors.New("the checksum map at the target is missing")
		} else if err != nil {
			return nil, 0, err
		}
		read = int64(len(b))
		if mapDigest(b) != d.MapDigest {
			return nil, read, errors.New("the checksum map at the target is not the one asr last wrote")
		}
		e.cacheMap(vm, d.Name, d.MapDigest, b)
	}
	m, err := chunker.Unmarshal(b)
	if err != nil {
		return nil, read, fmt.Errorf("the checksum map at the target: %w", err)
	}
	if m.Size != d.ReplicaSize {
		return nil, read, fmt.Errorf("the checksum map at the target is for %d bytes, the replica has %d", m.Size, d.ReplicaSize)
	}
	tab, err := m.Table()
	return tab, read, err
}

// storeMap writes tab as the disk's map and returns its digest; the caller
// records it in the vault and then calls dropMaps to delete older ones.
func (e *Engine) storeMap(ctx context.Context, t target.Target, vm, disk string, tab *chunker.Table) (string, error) {
	b, err := tab.Map().MarshalBinary()
	if err != nil {
		return "", err
	}
	digest := mapDigest(b)
	if err := t.PutObject(ctx, mapPrefix(vm, disk)+digest, b); err != nil {
		return "", fmt.Errorf("store the checksum map of %s: %w", disk, err)
	}
	e.cacheMap(vm, disk, digest, b)
	return digest, nil
}

// cacheMap keeps a copy of a map beside the state file. A failure only
// costs a download later: the digest is checked on every read.
func (e *Engine) cacheMap(vm, disk, digest string, b []byte) {
	cache := e.mapCache(vm, disk, digest)
	if os.MkdirAll(filepath.Dir(cache), 0o700) == nil && os.WriteFile(cache+".tmp", b, 0o600) == nil {
		os.Rename(cache+".tmp", cache)
	}
}

// dropMaps deletes the disk's maps other than keep, at the target and in
// the cache.
func (e *Engine) dropMaps(ctx context.Context, t target.Target, vm, disk, keep string) {
	prefix := mapPrefix(vm, disk)
	keys, _ := t.ListObjects(ctx, prefix)
	for _, k := range keys {
		if strings.TrimPrefix(k, prefix) != keep {
			t.DeleteObject(ctx, k)
		}
	}
	e.uncacheMaps(vm, disk, keep)
}

// uncacheMaps deletes the disk's cached maps other than keep.
func (e *Engine) uncacheMaps(vm, disk string, keep ...string) {
	old, _ := filepath.Glob(e.mapCache(vm, disk, "*"))
	for _, f := range old {
		if len(keep) == 0 || !strings.HasSuffix(f, "."+keep[0]) {
			os.Remove(f)
		}
	}
}
