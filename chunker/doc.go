// Package chunker owns fixed-block checksum maps, the basis of resync: when
// a disk's replication logs cannot be trusted, the source and the replica
// are each described by a map (per block: an all-zeros flag or a hash), the
// maps are compared, and only the differing byte ranges are sent.
//
// Build makes a map from a disk on all cores; MarshalBinary and Unmarshal
// move it between sites in a versioned, checksummed encoding (layout in
// encode.go) whose decoder bounds every allocation by the input length;
// Diff compares two maps; DiffReader compares a map against a disk while
// keeping one bit per block instead of a second map. A block is compared
// only with the block at the same index, and all-zero blocks are found by
// byte comparison, never by hash, so a change to or from zeros is exact.
//
// # Decisions and the measurements behind them
//
// Figures from this package's benchmarks on the development machine (2
// vCPUs of an AMD EPYC "Turin-like" VM with AVX-512, Go 1.26, virtio disk
// with 8 MiB read-ahead). The machine was shared with other jobs (load
// average 13-18 during the I/O runs), so single passes vary by up to 5x;
// medians are given with the spread where it matters.
//
// Hash: XXH3-128 (github.com/zeebo/xxh3), hash id 1. BenchmarkHash, one
// core, data in cache, median of 3:
//
//	               64 KiB block   1 MiB block
//	xxh3-128       87 GB/s        96 GB/s
//	blake3-256     2.9 GB/s       3.2 GB/s
//	sha256         1.6 GB/s       1.7 GB/s
//
// Resync reads whole disks on the hypervisor host, whose cores belong to
// the guests: at disk speed (about 2 GB/s here) XXH3 costs 2% of one core,
// BLAKE3 about 65% and SHA-256 more than one. XXH3-128 is safe enough
// because the comparison is positional and the input is not adversarial: a
// change is missed only if a block's new content has the same 128-bit hash
// as its old content, about 2^-128 per changed block for a hash with
// XXH3's distribution (it passes SMHasher); 10^15 changed blocks give a
// chance near 3e-24, far below the odds of an undetected disk or memory
// error. It is not collision resistant: a guest that deliberately writes a
// crafted colliding block could hide that block from a resync of its own
// disk, harming only its own replica. If that threat ever matters, a map
// records its hash id, so maps with a new id (keyed BLAKE3, say) stay
// decodable and maps of different ids are refused (ErrMismatch), never
// mis-compared.
//
// Block size: DefaultBlockSize is 64 KiB (powers of two from 4 KiB to
// 16 MiB are allowed). BenchmarkBlockSizeTradeoff (computed, seeded) and
// BenchmarkBuild (1 GiB file, medians of 8 passes-of-3):
//
//	block    map of a 100 GiB disk   sent after 10,000 4 KiB writes to   build GB/s
//	         (no zero blocks)        a 4 GiB disk: uniform / 80% of      cold / cached
//	                                 them in the hottest 10%
//	64 KiB   26,419,236 B (25 MiB)   578 MiB / 407 MiB                   2.0 / 4.9
//	256 KiB   6,604,836 B (6.3 MiB)  1,876 MiB / 834 MiB                 1.7 / 7.3
//	1 MiB     1,651,236 B (1.6 MiB)  3,703 MiB / 1,843 MiB               1.7 / 12.9
//
// The writes themselves are 39 MiB; 64 KiB blocks send 3.2x (uniform) and
// 2x (hot spot) less than 256 KiB, 6.4x and 4.5x less than 1 MiB, for a
// map of 0.025% of the disk. Cold builds, the real resync case, run at the
// same speed for all three. The cached spread is 2.8-17 GB/s for every
// size and alternating single runs showed no consistent order (64 KiB
// 4.4-8.2, 1 MiB 3.6-8.1), so it is the shared machine, not the block
// size: hashing is 5% of a cached build's CPU profile, copying out of the
// page cache most of the rest.
//
// Run size: each worker reads max(block size, 1 MiB) per ReadAt.
// BenchmarkBuildRunSize, 64 KiB blocks, medians of 3 passes-of-3:
//
//	run        512 KiB  1 MiB  2 MiB  4 MiB  8 MiB  32 MiB
//	cold GB/s  2.6      2.6    1.8    2.1    1.2    0.75
//	cached     7.9      6.4    7.0    7.4    4.8    2.8
//
// Cold reads fall steadily above 1 MiB: a worker's large read must finish
// before it hashes, so the two workers stop overlapping with each other
// and with kernel read-ahead; a small run also stays in the core's L2
// cache between the copy and the hash.
//
// Throughput against plain reads (BenchmarkBuild at 64 KiB against
// BenchmarkSequentialRead, one reader of 1 MiB reads, same file contents,
// same runs; medians of 8 passes-of-3): cold, with the file's pages
// dropped by fadvise before each pass, 2.0 vs 1.2 GB/s (spreads 1.5-2.7
// and 0.3-2.1): the build keeps up with, and with two reads in flight
// beats, one plain reader, so it is I/O-bound. From the page cache 4.9 vs
// 7.1 GB/s (spreads 2.8-12 and 4.4-19), ratio 0.7: both are bound by the
// copy out of the page cache, which the CPU profile shows taking 4x the
// time of hashing.
package chunker
