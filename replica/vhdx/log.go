package vhdx

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"

	"github.com/google/uuid"
)

// Log entry header ([MS-VHDX] 2.3.1.1): the first 64 bytes of every log
// entry, which starts on a 4 KiB boundary of the circular log.
const (
	logSectorSize = 4 * kib
	logHeaderSize = 64
	leChecksum    = 4  // CRC-32C of the EntryLength bytes, this field zeroed
	leEntryLength = 8  // uint32, multiple of 4 KiB
	leSequence    = 16 // uint64, never 0
	leLogGUID     = 32 // GUID, must equal the header's LogGuid
)

// logVerifyBudget caps the bytes logPending checksums (a variable so tests
// can lower it).
var logVerifyBudget uint64 = 256 * mib

var logEntrySignature = []byte("loge")

// logPending reports whether the log of h holds at least one valid entry
// ([MS-VHDX] 2.3.1.1): signature "loge", the header's LogGuid, a non-zero
// SequenceNumber, an EntryLength that is a non-zero multiple of 4 KiB no
// longer than the log, and a good checksum. Entries may wrap around the
// end of the log. This is the condition under which qemu and Hyper-V
// replay the log; a LogGuid with no valid entry behind it means an empty
// log (2.2.2). Past logVerifyBudget bytes of checksumming, a candidate
// entry counts as valid unchecked, which errs toward asking for a replay.
func (p *parser) logPending(h header) (bool, error) {
	if h.log == uuid.Nil || h.logLength == 0 {
		return false, nil
	}
	n := uint64(h.logLength)
	hdr := make([]byte, logHeaderSize)
	var buf []byte
	budget := logVerifyBudget
	for pos := uint64(0); pos < n; pos += logSectorSize {
		if err := p.readInto(hdr, int64(h.logOffset+pos), "log entry header"); err != nil {
			return false, err
		}
		length := uint64(binary.LittleEndian.Uint32(hdr[leEntryLength:]))
		if !bytes.Equal(hdr[:4], logEntrySignature) || guidAt(hdr[leLogGUID:]) != h.log ||
			binary.LittleEndian.Uint64(hdr[leSequence:]) == 0 ||
			length == 0 || length%logSectorSize != 0 || length > n {
			continue
		}
		if budget < length {
			return true, nil
		}
		budget -= length
		if buf == nil {
			buf = make([]byte, 64*kib)
		}
		ok, err := p.entryChecksumOK(h, pos, length, binary.LittleEndian.Uint32(hdr[leChecksum:]), buf)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// entryChecksumOK computes the CRC-32C of the length bytes of the entry at
// pos in the circular log, in pieces of len(buf), and compares it with
// stored.
func (p *parser) entryChecksumOK(h header, pos, length uint64, stored uint32, buf []byte) (bool, error) {
	n := uint64(h.logLength)
	var crc uint32
	for done := uint64(0); done < length; {
		off := (pos + done) % n
		chunk := min(length-done, n-off, uint64(len(buf)))
		if err := p.readInto(buf[:chunk], int64(h.logOffset+off), "log entry"); err != nil {
			return false, err
		}
		if done == 0 {
			crc = checksum(buf[:chunk], leChecksum) // the first piece holds the 64-byte header
		} else {
			crc = crc32.Update(crc, castagnoli, buf[:chunk])
		}
		done += chunk
	}
	return crc == stored, nil
}
