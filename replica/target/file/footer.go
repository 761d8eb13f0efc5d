package file

// footerSize is the size of the fixed VHD footer after the virtual disk;
// vhd.FixedFooter writes it.
const footerSize = 512
