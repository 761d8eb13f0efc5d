package nbd

import (
	"errors"
	"syscall"
)

// Wire constants from the NBD protocol specification (doc/proto.md of the
// NetworkBlockDevice/nbd project). All integers travel big-endian.

// Magic numbers.
const (
	magicInit        uint64 = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt         uint64 = 0x49484156454f5054 // "IHAVEOPT"
	magicOptReply    uint64 = 0x0003e889045565a9
	magicRequest     uint32 = 0x25609513
	magicSimpleReply uint32 = 0x67446698

	magicStructuredReply uint32 = 0x668e33ef
	magicOldstyle        uint64 = 0x00420281861253 // "cliserv_magic": oldstyle negotiation
)

// Handshake flags (server) and client flags.
const (
	flagFixedNewstyle uint16 = 1 << 0
	flagNoZeroes      uint16 = 1 << 1

	clientFixedNewstyle uint32 = 1 << 0
	clientNoZeroes      uint32 = 1 << 1
)

// Transmission flags.
const (
	tflagHasFlags         uint16 = 1 << 0
	tflagReadOnly         uint16 = 1 << 1
	tflagSendFlush        uint16 = 1 << 2
	tflagSendFUA          uint16 = 1 << 3
	tflagSendTrim         uint16 = 1 << 5
	tflagSendWriteZeroes  uint16 = 1 << 6
	tflagCanMultiConn     uint16 = 1 << 8
	transmissionFlagsSent        = tflagHasFlags | tflagSendFlush | tflagSendFUA |
		tflagSendTrim | tflagSendWriteZeroes | tflagCanMultiConn
)

// Options.
const (
	optExportName      uint32 = 1
	optAbort           uint32 = 2
	optList            uint32 = 3
	optStartTLS        uint32 = 5
	optInfo            uint32 = 6
	optGo              uint32 = 7
	optStructuredReply uint32 = 8
	optSetMetaContext  uint32 = 10
)

// Option reply types.
const (
	repAck         uint32 = 1
	repServer      uint32 = 2
	repInfo        uint32 = 3
	repMetaContext uint32 = 4
	repErrBit      uint32 = 1 << 31 // every error reply type has it
	repErrUnsup    uint32 = 1<<31 + 1
	repErrPolicy   uint32 = 1<<31 + 2
	repErrInvalid  uint32 = 1<<31 + 3
	repErrPlatform uint32 = 1<<31 + 4
	repErrTLSReqd  uint32 = 1<<31 + 5
	repErrUnknown  uint32 = 1<<31 + 6
	repErrShutdown uint32 = 1<<31 + 7
	repErrBlockReq uint32 = 1<<31 + 8 // NBD_REP_ERR_BLOCK_SIZE_REQD
	repErrTooBig   uint32 = 1<<31 + 9
)

// Information types of NBD_OPT_INFO / NBD_OPT_GO.
const (
	infoExport      uint16 = 0
	infoName        uint16 = 1
	infoDescription uint16 = 2
	infoBlockSize   uint16 = 3
)

// Commands.
const (
	cmdRead        uint16 = 0
	cmdWrite       uint16 = 1
	cmdDisc        uint16 = 2
	cmdFlush       uint16 = 3
	cmdTrim        uint16 = 4
	cmdCache       uint16 = 5
	cmdWriteZeroes uint16 = 6
	cmdBlockStatus uint16 = 7
)

// Command flags.
const (
	cmdFlagFUA      uint16 = 1 << 0
	cmdFlagNoHole   uint16 = 1 << 1
	cmdFlagDF       uint16 = 1 << 2
	cmdFlagFastZero uint16 = 1 << 4
)

// Structured reply flags and chunk types (NBD_REPLY_FLAG_*, NBD_REPLY_TYPE_*).
const (
	replyFlagDone uint16 = 1 << 0

	chunkNone        uint16 = 0
	chunkOffsetData  uint16 = 1
	chunkOffsetHole  uint16 = 2
	chunkBlockStatus uint16 = 5
	chunkErrorBit    uint16 = 1 << 15 // every error chunk type has it
	chunkError       uint16 = 1<<15 + 1
	chunkErrorOffset uint16 = 1<<15 + 2
)

// The base:allocation metadata context and its status flags.
const (
	metaBaseAllocation = "base:allocation"

	stateHole uint32 = 1 << 0
	stateZero uint32 = 1 << 1

	// maxStatusChunk is the largest NBD_REPLY_TYPE_BLOCK_STATUS payload the
	// spec lets a server send: a context ID and 2^20 descriptors.
	maxStatusChunk = 4 + 8<<20
)

// Error values of replies.
const (
	nbdEPERM     uint32 = 1
	nbdEIO       uint32 = 5
	nbdENOMEM    uint32 = 12
	nbdEINVAL    uint32 = 22
	nbdENOSPC    uint32 = 28
	nbdEOVERFLOW uint32 = 75
	nbdENOTSUP   uint32 = 95
	nbdESHUTDOWN uint32 = 108
)

// Sizes that bound what a client can make the server read or hold.
const (
	// maxString is the spec's hard limit on any string (export names, messages).
	maxString = 4096
	// maxOptionData bounds one option's payload. The largest option this server
	// understands is NBD_OPT_GO: 4 + 4096 (name) + 2 + 2 per info request; a
	// longer option is a denial of service and ends the session.
	maxOptionData = 64 << 10
	// dosWriteLength: the spec says write payloads below 2^25 bytes SHOULD NOT
	// be treated as a denial of service, so an oversized write below it is
	// discarded and refused; one at or above it ends the session.
	dosWriteLength = 1 << 25
	// defaultMaxRequest is what a client desiring interoperability limits
	// itself to (2^25), and what qemu's client uses.
	defaultMaxRequest = 32 << 20
	// preferredBlock is the spec's default preferred block size.
	preferredBlock = 4096
)

// errnoOf maps a backend error to a wire error: out-of-space style errors to
// ENOSPC as the spec asks, anything else to EIO.
func errnoOf(err error) uint32 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return nbdENOSPC
	default:
		return nbdEIO
	}
}
