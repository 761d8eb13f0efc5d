package image

import (
	"errors"

	"github.com/asr-project/asr/replica/qemunbd"
	"github.com/asr-project/asr/replica/vhd"
)

// Probe decides a file's format by content: a signature qemu knows picks
// that format, two signatures are refused as ambiguous, and a file with
// none is left to package vhd's rules (a .vhd missing its footer is named
// as such; .raw and .img are raw; anything else is refused).
func Probe(path string) (Format, error) {
	q, err := qemunbd.Probe(path)
	switch {
	case err == nil && q == "vpc":
		return "vhd", nil
	case err == nil:
		return Format(q), nil
	case !errors.Is(err, qemunbd.ErrUnknownFormat):
		return "", err
	}
	d, err := vhd.OpenAs(path, vhd.FormatAuto)
	if err != nil {
		return "", err
	}
	defer d.Close()
	if d.Type() == vhd.TypeRaw {
		return "raw", nil
	}
	return "vhd", nil
}
