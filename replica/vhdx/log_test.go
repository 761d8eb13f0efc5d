package vhdx

import (
	"testing"

	"github.com/google/uuid"
)

func TestLogPending(t *testing.T) {
	logID := uuid.MustParse("0badc0de-0000-4000-8000-000000000001")
	other := uuid.MustParse("0badc0de-0000-4000-8000-000000000002")
	bad := func(e []byte) []byte { e[100] ^= 1; return e }
	const logOff, logLen = mib, mib
	for _, c := range []struct {
		name    string
		header  uuid.UUID // LogGuid of the current header
		entries map[int64][]byte
		budget  uint64
		pending bool
	}{
		{name: "no LogGuid", header: uuid.Nil},
		{name: "no LogGuid, entry with zero GUID", header: uuid.Nil, entries: map[int64][]byte{0: logEntry(uuid.Nil, 1, 8*kib)}},
		{name: "LogGuid, no entries", header: logID},
		{name: "valid entry", header: logID, entries: map[int64][]byte{0: logEntry(logID, 1, 8*kib)}, pending: true},
		{name: "valid entry mid-log", header: logID, entries: map[int64][]byte{12 * kib: logEntry(logID, 9, 4*kib)}, pending: true},
		{name: "entry wraps the log end", header: logID, entries: map[int64][]byte{logLen - 4*kib: logEntry(logID, 3, 12*kib)}, pending: true},
		{name: "other GUID", header: logID, entries: map[int64][]byte{0: logEntry(other, 1, 8*kib)}},
		{name: "bad checksum", header: logID, entries: map[int64][]byte{0: bad(logEntry(logID, 1, 8*kib))}},
		{name: "sequence 0", header: logID, entries: map[int64][]byte{0: logEntry(logID, 0, 8*kib)}},
		{name: "length past log", header: logID, entries: map[int64][]byte{0: withLength(logEntry(logID, 1, 4*kib), 2*mib)}},
		{name: "length unaligned", header: logID, entries: map[int64][]byte{0: withLength(logEntry(logID, 1, 4*kib), 4000)}},
		{name: "bad entry then good", header: logID, pending: true, entries: map[int64][]byte{
			0: bad(logEntry(logID, 1, 8*kib)), 64 * kib: logEntry(logID, 2, 4*kib)}},
		{name: "over budget counts as pending", header: logID, budget: 4 * kib, pending: true,
			entries: map[int64][]byte{0: bad(logEntry(logID, 1, 8*kib))}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.budget != 0 {
				old := logVerifyBudget
				logVerifyBudget = c.budget
				defer func() { logVerifyBudget = old }()
			}
			l := baseLayout()
			l.headers[1].log = c.header
			s := l.build()
			for pos, e := range c.entries {
				s.putLog(logOff, logLen, pos, e)
			}
			info, err := Parse(s, s.size, "/vm/d.vhdx")
			if err != nil {
				t.Fatal(err)
			}
			if info.LogGUID != c.header || info.LogPending != c.pending || info.LogEmpty() == c.pending {
				t.Fatalf("LogGUID %s LogPending %v LogEmpty %v, want %s, %v", info.LogGUID, info.LogPending, info.LogEmpty(), c.header, c.pending)
			}
			err = CheckReplayed(info)
			if !c.pending {
				checkErr(t, err, nil)
				return
			}
			checkErr(t, err, ErrLogNotEmpty, "VHDX /vm/d.vhdx has a non-empty log (LogGuid "+c.header.String()+")",
				"run `qemu-img check -r all /vm/d.vhdx`")
		})
	}
}

// withLength sets an entry's EntryLength field and fixes its checksum.
func withLength(e []byte, n uint32) []byte {
	e[leEntryLength], e[leEntryLength+1], e[leEntryLength+2], e[leEntryLength+3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	putChecksum(e, leChecksum)
	return e
}
