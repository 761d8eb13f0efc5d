package vhd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// openParent finds, opens and checks the parent of a differencing disk.
// Candidates, first existing wins: the W2ru (relative) locators, the W2ku
// (absolute) locators, the header's parent unicode name; each Windows path
// is tried as written (backslashes turned to slashes, relative to the
// child's folder) and then by its base name in the child's folder, which is
// where a replicated chain lands.
func (d *Disk) openParent(chain []os.FileInfo, info *Info) error {
	cands := d.parentCandidates()
	chosen, st := "", os.FileInfo(nil)
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			chosen, st = c, fi
			break
		}
	}
	if chosen == "" {
		return formatErr(d.path, "parent locators", d.hdr.off, hLocators, ErrBrokenChain,
			"parent %q not found (tried %s)", d.hdr.parentName, strings.Join(cands, ", "))
	}
	if info != nil {
		info.Parent = chosen
	}
	for _, c := range chain {
		if os.SameFile(st, c) {
			return formatErr(d.path, "parent locators", d.hdr.off, hLocators, ErrBrokenChain,
				"parent %s is a disk of the chain itself (a loop)", chosen)
		}
	}
	if len(chain) >= maxChainDepth {
		return formatErr(d.path, "parent locators", d.hdr.off, hLocators, ErrBrokenChain,
			"chain longer than %d disks at parent %s", maxChainDepth, chosen)
	}
	p, err := openDisk(chosen, openMode{format: FormatVHD}, chain, nil)
	if errors.Is(err, ErrBrokenChain) {
		return fmt.Errorf("vhd %s: parent %s: %w", d.path, chosen, err)
	}
	if err != nil {
		return fmt.Errorf("vhd %s: parent %s: %w: %w", d.path, chosen, ErrBrokenChain, err)
	}
	if p.typ == TypeRaw || p.ft.id != d.hdr.parentID {
		p.Close()
		return formatErr(d.path, "dynamic header parent unique id", d.hdr.off, hParentID, ErrBrokenChain,
			"want %s, parent %s (%s) has %s", uuidString(d.hdr.parentID), chosen, p.typ, uuidString(p.ft.id))
	}
	// The spec calls this the parent's "modification time stamp"; tools
	// store either the parent footer's time stamp or the parent file's
	// mtime, so either matches. Zero means "not recorded".
	if ts := d.hdr.parentTime; ts != 0 && ts != p.ft.timestamp {
		st, serr := p.f.Stat()
		if serr != nil || vhdTime(st.ModTime()) != ts {
			p.Close()
			return formatErr(d.path, "dynamic header parent time stamp", d.hdr.off, hParentTime, ErrBrokenChain,
				"want %d, parent %s has footer time stamp %d", ts, chosen, p.ft.timestamp)
		}
	}
	d.parent = p
	return nil
}

func (d *Disk) parentCandidates() []string {
	var names []string
	for _, code := range []string{"W2ru", "W2ku"} {
		for _, l := range d.hdr.locators {
			if l.code == code {
				names = append(names, l.path)
			}
		}
	}
	if d.hdr.parentName != "" {
		names = append(names, d.hdr.parentName)
	}
	dir := filepath.Dir(d.path)
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	var bases []string
	for _, n := range names {
		n = strings.TrimPrefix(n, `\\?\`)
		n = strings.ReplaceAll(n, `\`, "/")
		windowsAbs := len(n) >= 2 && n[1] == ':'
		switch {
		case windowsAbs:
		case filepath.IsAbs(n):
			add(filepath.Clean(n))
		default:
			add(filepath.Join(dir, n))
		}
		bases = append(bases, filepath.Join(dir, filepath.Base(n)))
	}
	for _, b := range bases {
		add(b)
	}
	return out
}
