package vhd

// Info describes an image for `asr vhd inspect`.
type Info struct {
	Type           Type   `json:"type"`
	VirtualSize    int64  `json:"virtual_size"`
	AllocatedBytes int64  `json:"allocated_bytes"`
	FileSize       int64  `json:"file_size"`
	Parent         string `json:"parent"` // path of the parent found, "" if none
	ParentUUID     string `json:"parent_uuid"`
	UUID           string `json:"uuid"`
	Creator        string `json:"creator"` // creator application, e.g. "win " or "qem2"
	Valid          bool   `json:"valid"`
	Error          string `json:"error,omitempty"`
}

// Inspect is InspectAs(path, FormatAuto).
func Inspect(path string) (Info, error) { return InspectAs(path, FormatAuto) }

// InspectAs opens the image read-only as OpenAs does and describes it. On a
// malformed or refused file it returns what it could read, Valid false, and
// the error (also in Info.Error). A dynamic disk whose tail footer is
// missing is read and described, and reported invalid.
func InspectAs(path string, f Format) (Info, error) {
	var info Info
	d, err := openDisk(path, openMode{format: f, inspect: true}, nil, &info)
	if err != nil {
		info.Error = err.Error()
		return info, err
	}
	defer d.Close()
	if info.AllocatedBytes, err = d.AllocatedBytes(); err != nil {
		info.Error = err.Error()
		return info, err
	}
	if d.tailErr != nil {
		info.Error = d.tailErr.Error()
		return info, d.tailErr
	}
	info.Valid = true
	return info, nil
}

// fillFooterInfo records what the footer says, before anything else fails.
func (d *Disk) fillFooterInfo(info *Info) {
	if info == nil {
		return
	}
	switch d.ft.diskType {
	case diskFixed:
		info.Type = TypeFixed
	case diskDynamic:
		info.Type = TypeDynamic
	case diskDifferencing:
		info.Type = TypeDifferencing
	default:
		info.Type = ""
	}
	info.VirtualSize = int64(min(d.ft.curSize, maxVirtualSize))
	info.UUID = uuidString(d.ft.id)
	info.Creator = d.ft.creator
}

// fillInfo records the final type and size of a disk that loaded.
func (d *Disk) fillInfo(info *Info) error {
	if info != nil {
		info.Type = d.typ
		info.VirtualSize = d.size
	}
	return nil
}
