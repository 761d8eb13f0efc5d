// Package vhdx reads what asr needs from a Microsoft VHDX file ([MS-VHDX],
// "Virtual Hard Disk v2 (VHDX) File Format"): the identifiers in its
// current header, whether its log needs a replay, and the disk geometry
// from its metadata region, so the caller can record the DataWriteGuid in
// each .hrl log (MS-HRL's Vhd2DataWriteGuid) and cross-check the virtual
// size qemu reports; and, from its Block Allocation Table, which parts of
// the virtual disk may hold data, so asr's initial copy skips the holes of
// a VHDX it reads through qemu-nbd (qemu's vhdx driver reports every block
// as data through NBD block status). It reads no disk data and writes
// nothing.
//
// Read(path) and Parse(r, size, name) return an Info; CheckReplayed(info)
// refuses a file whose log must be replayed first. Extents(path) returns
// the virtual byte ranges that may hold data, sorted and merged, as
// []Extent{Off, Len}; ScanExtents(r, size, info, fn) hands them to fn one
// at a time, in bounded memory.
//
// What is read, all little-endian ([MS-VHDX] section):
//
//   - File Type Identifier at 0 (2.2.1): "vhdxfile", then the creator as
//     UTF-16LE up to the first NUL (at most 256 code units).
//   - Headers at 64 KiB and 128 KiB (2.2.2), 4 KiB each: "head", CRC-32C
//     (Castagnoli) of the 4 KiB with the checksum field zeroed,
//     SequenceNumber, FileWriteGuid, DataWriteGuid, LogGuid, LogVersion,
//     Version, LogLength, LogOffset.
//   - Region table at 192 KiB, copy at 256 KiB (2.2.3): "regi", CRC-32C of
//     the 64 KiB, EntryCount, entries of GUID, FileOffset, Length, Required.
//   - Metadata table at the start of the metadata region (2.6.1): "metadata",
//     EntryCount, entries of ItemId, Offset, Length, IsUser/IsVirtualDisk/
//     IsRequired; then the Virtual Disk Size (2.6.2.2), Logical Sector
//     Size (2.6.2.4) and File Parameters (2.6.2.1: BlockSize, then flags
//     LeaveBlocksAllocated and HasParent) items.
//   - Log entry headers in the log (2.3.1.1), only when LogGuid is set.
//   - By Extents and ScanExtents only, the BAT (2.5): 64-bit entries, the
//     state in bits 0-2 and FileOffsetMB in bits 20-63, one sector bitmap
//     entry after every chunkRatio = 2^23 * LogicalSectorSize / BlockSize
//     payload entries, so payload block b is entry b + b/chunkRatio.
//
// Decisions:
//
//   - GUIDs are stored in the Windows GUID layout (MS-DTYP: Data1 uint32,
//     Data2 and Data3 uint16 little-endian, Data4 8 bytes as is). Info holds
//     them as uuid.UUID in RFC 4122 byte order, the first three groups
//     byte-swapped on reading, so String() prints what Windows prints for
//     the same GUID ([System.Guid] in PowerShell, lower case): the BAT region
//     GUID stored as 66 77 c2 2d 23 f6 00 42 9d 64 ... reads as
//     2dc27766-f623-4200-9d64-115e9bfd4a08, as the spec prints it
//     (TestGUIDLayout). replica/hrl uses the same convention, so
//     Info.DataWriteGUID goes into a .hrl header as is and is stored there
//     with the same bytes as in the VHDX.
//   - Current header: the valid one (signature and checksum hold) with the
//     higher sequence number, or the only valid one; none is ErrCorrupt.
//     Two valid headers with one sequence number are accepted only when
//     byte-identical (Disk2VHD writes them so; qemu accepts that too), and
//     header 1 is used. Version 1, LogVersion 0 and the log location
//     (1 MiB aligned, inside the file) are checked on the current header
//     only; the other one may be stale.
//   - Region table: the table at 192 KiB is authoritative when its
//     signature and checksum hold, even if it is wrong; the copy at 256 KiB
//     is read only when the first is torn. Entries must be unique, 1 MiB
//     aligned, at or past 1 MiB, inside the file and overlap neither each
//     other nor the log; the BAT and metadata regions must be listed with a
//     non-zero length. Their Required flags are not demanded (qemu writes
//     0); an unknown region marked required is ErrUnsupported, as the spec
//     says a reader must refuse it.
//   - Metadata: entries unique per (ItemId, IsUser), at most 1 MiB, an
//     empty item at Offset 0, others between 64 KiB and the region's end
//     (overlaps between items are not checked). Only system items
//     (IsUser 0) count. An unknown item marked required is ErrUnsupported.
//     The Logical Sector Size must be 512 or 4096 and the Virtual Disk Size
//     a multiple of it, at most 64 TiB (0 is allowed). The File Parameters
//     BlockSize must be a power of 2 from 1 MiB to 256 MiB (its reserved
//     flag bits are ignored). Read does not read the BAT or parent
//     locators: a file cut among its payload blocks, or a differencing
//     disk without its parent, reads fine there; Extents sees both.
//   - Log: Info.LogEmpty means there is nothing to replay. By 2.2.2 a zero
//     LogGuid means an empty log, and a non-zero one makes only the entries
//     carrying it valid; so the log is pending (Info.LogPending) only when
//     some 4 KiB-aligned entry has "loge", that LogGuid, a non-zero
//     SequenceNumber, an EntryLength that is a non-zero 4 KiB multiple no
//     longer than the log, and a good CRC-32C (entries may wrap around the
//     log's end). A LogGuid alone is not enough: qemu opens such a file
//     read-only without complaint and `qemu-img check -r all` leaves its
//     LogGuid in place, so refusing it would give the operator no way out.
//     Past 256 MiB of checksumming a candidate entry counts as valid
//     (bounded work, erring toward a replay). The sequence-level rules of
//     2.3.3 (tail, consecutive sequence numbers) are not applied.
//   - CheckReplayed is separate from Read: reporting tools show a dirty file,
//     the tracker refuses it. Its message names the file and the LogGuid and
//     says to stop the VM using it, then run `qemu-img check -r all PATH`
//     (measured below to replay the log) or attach the disk read-write once
//     on Hyper-V.
//   - Extents: the blocks whose BAT entry is PAYLOAD_BLOCK_FULLY_PRESENT
//     (6) or PARTIALLY_PRESENT (7), the last cut at the Virtual Disk Size.
//     Every other block reads as zeros through qemu, which is how asr
//     reads a VHDX: NOT_PRESENT 0, UNDEFINED 1, ZERO 2, UNMAPPED 3 and
//     qemu's UNMAPPED_v095 5 are holes whatever file offset they carry
//     (TestQemuBATStates: qemu reads all five as zeros). PARTIALLY_PRESENT,
//     which the spec allows only in differencing disks, counts as data for
//     its whole block (conservative; qemu fails reads of it). State 4 is
//     undefined: ErrCorrupt naming the block (qemu fails reads of it).
//     Sector bitmap entries are skipped.
//   - The BAT region must hold blocks + (blocks-1)/chunkRatio entries. A
//     present block must lie past the header section, clear of the log,
//     BAT and metadata regions, and inside the file (only its part inside
//     the virtual disk, for a disk that ends mid-block; qemu demands the
//     whole block). Each fault is ErrCorrupt naming the entry, the block,
//     its virtual bytes and its file offset; qemu 7.2 refuses to open such
//     files too (TestQemuBATCorrupt), except a block at file offset 0,
//     which it opens and reads from the header section. Blocks overlapping
//     each other are not looked for.
//   - A differencing disk (HasParent) is ErrUnsupported, not one extent
//     over the whole disk: its own BAT does not say where its data is, and
//     qemu 7.2 does not open differencing VHDX (TestQemuDifferencing), so
//     asr could not read it through qemu anyway. The message says to merge
//     it (Merge-VHD) or copy the chain to a standalone disk (Convert-VHD).
//     LeaveBlocksAllocated is reported, not used: the states say what is
//     present. A pending log is CheckReplayed's error: BAT updates may wait
//     in it.
//   - Memory: ScanExtents reads the BAT 256 KiB at a time; the largest,
//     64 TiB in 1 MiB blocks, is 512 MiB of entries (TestExtentsHuge scans
//     it allocating under 1 MiB). Extents' slice takes 16 bytes per run of
//     present blocks, at worst 512 MiB for that disk with every other
//     block present; such callers use ScanExtents.
//   - A live file: the BAT is read as it stands, so a block allocated
//     after its entry was read is missing; a caller scanning a disk in use
//     must be tracking writes already (asr's tracker logs each one before
//     qemu sees it). A block that seems to end past the file makes Extents
//     look at the file's size once more before calling it corrupt: qemu
//     extends the file before it records a new block.
//   - Errors about the contents are *FormatError (path, structure, offset,
//     facts, what to do) wrapping ErrNotVHDX, ErrCorrupt or ErrUnsupported;
//     I/O errors are returned wrapped, not as sentinels. Parse allocates
//     a few hundred KiB at most whatever size and the structures claim
//     (FuzzRead fails above 1 MiB).
//
// What qemu does (measured with qemu-img and qemu-io 7.2.22, Debian
// 1:7.2+dfsg-7+deb12u18, by the tests in qemu_test.go):
//
//   - qemu-img create -f vhdx: random FileWriteGuid and DataWriteGuid, zero
//     LogGuid, a 1 MiB log at 1 MiB, BAT at 2 MiB, metadata at 3 MiB,
//     creator "QEMU v7.2.22", 512-byte logical sectors, a random starting
//     sequence number. A 64 MiB dynamic file is 8 MiB long.
//   - A read-write open that only reads changes no header: qemu defers the
//     header update the spec asks for at open until the first write.
//   - The first write of each session rewrites the headers with a new
//     FileWriteGuid and a new DataWriteGuid and a higher sequence number.
//     qemu logs BAT updates and clears LogGuid again once they are applied,
//     so a finished session leaves LogGuid zero (the entries stay in the
//     log, unreferenced).
//   - qemu-img create writes every payload BAT entry as PAYLOAD_BLOCK_ZERO
//     with file offset 0, dynamic or fixed (its default block_state_zero=
//     on). A fixed file sets LeaveBlocksAllocated and reserves the space
//     (a 64 MiB fixed file is 72 MiB) but no entry points into it, so a new
//     fixed disk has no extents; with block_state_zero=off its entries are
//     FULLY_PRESENT, block i at 8 MiB + i * 8 MiB, one extent over the
//     disk. The default block size is 8 MiB up to 1 GiB, 16 MiB up to
//     100 GiB, 32 MiB up to 32 TiB, 64 MiB above.
//   - A write to a block not present allocates it at the end of the file
//     (1 MiB aligned; in a fixed file too, past the reserved space) and
//     marks it FULLY_PRESENT. qemu-img map calls the whole disk one data
//     extent, written or not; what Extents returns covers exactly the
//     blocks written, and `qemu-img convert -O raw` gives zeros everywhere
//     else (TestQemuExtents).
//   - With a live log entry (LogGuid set to its GUID, as a crash between
//     flushing the entry and clearing LogGuid leaves it) a read-only open
//     fails ("needs to be replayed", with the hint `qemu-img check -r all`);
//     `qemu-img check -r all` replays it, clears LogGuid, and gives the file
//     a new DataWriteGuid, so asr sees such a disk as changed.
//
// So DataWriteGuid changes at the first write of every writer's session,
// the tracked VM's own qemu included: it proves the data unchanged only
// between two points where the tracker knows no writer had the file open.
//
// FuzzRead (Parse, then ScanExtents on what it accepts): two 20 s runs on
// 2 workers, 58,123 and 80,978 execs before ScanExtents was added, 113,730
// after, 139 inputs in the cached corpus, no failure. FuzzExtents (a valid
// file around fuzzed geometry, File Parameters, BAT region length, BAT
// bytes, file size and read chunk, checked against a plain model): two
// 20 s runs, 92,866 and 100,593 execs; its one failure was the model's (it
// refused state 4 in a sector bitmap entry), kept in testdata/fuzz.
// (`go test -run '^$' -fuzz FuzzRead -fuzztime 20s -fuzzminimizetime 2s
// ./replica/vhdx`, the same with FuzzExtents.)
package vhdx
