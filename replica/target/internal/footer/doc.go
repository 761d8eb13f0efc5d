// Package footer rewrites the fixed VHD footer of a replica disk for a new
// virtual size. Both backends' ResizeDisk use it, so a grown replica reads
// as a fixed VHD of its new size in qemu-img, Hyper-V and Azure alike.
package footer
