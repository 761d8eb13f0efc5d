package footer

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/vhd"
)

// Size is the length of a fixed VHD footer.
const Size = 512

// Field offsets in the footer (Microsoft's VHD specification, 2006).
const (
	cookie    = "conectix"
	timestamp = 24 // u32, seconds since 2000-01-01 UTC
	uniqueID  = 68 // 16 bytes
)

var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// For returns the footer of a fixed VHD of virtual size size that carries
// on from old, the footer the disk had before: it keeps old's unique id and
// creation time, so the grown disk is still the same disk, and rewrites
// both size fields, the geometry and the checksum (vhd.FixedFooter). When
// old is not a footer (no "conectix" cookie: an interrupted resize cleared
// it) the disk gets a fresh unique id and the current time.
func For(old []byte, size int64) []byte {
	if len(old) < Size || !bytes.HasPrefix(old, []byte(cookie)) {
		return vhd.FixedFooter(size, [16]byte(uuid.New()), time.Now())
	}
	created := epoch.Add(time.Duration(binary.BigEndian.Uint32(old[timestamp:])) * time.Second)
	return vhd.FixedFooter(size, [16]byte(old[uniqueID:uniqueID+16]), created)
}

// Fits reports whether b is the footer asr writes for a fixed VHD of
// virtual size size: For(b, size) would not change it. A footer written
// for another size, a damaged one or zeros do not fit.
func Fits(b []byte, size int64) bool {
	return len(b) == Size && bytes.Equal(b, For(b, size))
}
