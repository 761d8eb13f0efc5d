package azblob

import (
	"time"

	"github.com/google/uuid"

	"github.com/asr-project/asr/replica/vhd"
)

// footerSize is the fixed VHD footer that follows a disk's virtual bytes.
const footerSize = 512

// newFooter builds the footer of a fixed VHD of the given virtual size
// with a fresh unique id.
func newFooter(size int64) []byte {
	return vhd.FixedFooter(size, [16]byte(uuid.New()), time.Now())
}
