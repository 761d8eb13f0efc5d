package host

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// ErrDomainDisk: NBDDomain was given a disk path that is no file disk of
// the domain (a second NBDDomain on its own output is this error too), or
// one that is not device='disk'.
var ErrDomainDisk = errors.New("no such file disk in the domain XML")

// DomainDisk is one <disk> of a libvirt domain.
type DomainDisk struct {
	Type   string // type attribute: file, block, network, dir, volume
	Device string // device attribute: disk, cdrom, floppy, lun
	// Source is <source file>, or dev (block), dir (dir) or name (network:
	// the NBD export, for instance).
	Source string
	Target string // <target dev>, e.g. vda
	Format string // <driver type>, e.g. qcow2 or raw
}

// NBDSource is an NBD export on a unix socket that replaces a file disk.
type NBDSource struct {
	Export string // export name; "" is the server's default export
	Socket string // path of the server's unix socket
}

// DomainDisks lists the <disk> elements under <devices> of domXML (as
// virsh dumpxml prints it), in document order.
func DomainDisks(domXML []byte) ([]DomainDisk, error) {
	var d struct {
		XMLName xml.Name `xml:"domain"`
		Disks   []struct {
			Type   string `xml:"type,attr"`
			Device string `xml:"device,attr"`
			Driver struct {
				Type string `xml:"type,attr"`
			} `xml:"driver"`
			Source struct {
				File string `xml:"file,attr"`
				Dev  string `xml:"dev,attr"`
				Dir  string `xml:"dir,attr"`
				Name string `xml:"name,attr"`
			} `xml:"source"`
			Target struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
		} `xml:"devices>disk"`
	}
	if err := xml.Unmarshal(domXML, &d); err != nil {
		return nil, fmt.Errorf("parse the domain XML: %w", err)
	}
	var out []DomainDisk
	for _, k := range d.Disks {
		s := k.Source
		out = append(out, DomainDisk{
			Type: k.Type, Device: k.Device, Target: k.Target.Dev, Format: k.Driver.Type,
			Source: firstNonEmpty(s.File, s.Dev, s.Dir, s.Name),
		})
	}
	return out, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// NBDDomain returns domXML with each <disk type='file' device='disk'>
// whose <source file> is a key of nbd turned into a network disk on that
// NBD export: type='network', <source protocol='nbd'> with a unix-socket
// <host>, <driver type='raw'> (other driver attributes kept) and no
// <backingStore>. Only those bytes change; the rest of the document
// (other disks, target, address, boot, metadata, comments, spacing) is
// copied as it is.
//
// A key that matches no file disk, or matches one that is not
// device='disk', is ErrDomainDisk. So NBDDomain is not idempotent: run on
// its own output it fails, as the disks are network disks by then; keep
// the original XML to rewrite again.
func NBDDomain(domXML []byte, nbd map[string]NBDSource) ([]byte, error) {
	for p, s := range nbd {
		if s.Socket == "" {
			return nil, fmt.Errorf("NBD source of %s: no socket path", p)
		}
	}
	disks, err := scanDisks(domXML)
	if err != nil {
		return nil, err
	}
	var edits []edit
	found := map[string]bool{}
	for _, k := range disks {
		src, ok := nbd[k.file]
		if k.typ != "file" || !ok || k.source.end == 0 {
			continue
		}
		if k.device != "disk" {
			return nil, fmt.Errorf("%w: %s is device='%s', not device='disk'", ErrDomainDisk, k.file, k.device)
		}
		found[k.file] = true
		edits = append(edits,
			edit{k.tag.start, k.tag.end, startTag(k.name, setAttr(k.attr, "type", "network"), false)},
			edit{k.source.start, k.source.end, nbdSourceXML(src)})
		if k.driver.end != 0 {
			edits = append(edits, edit{k.driver.start, k.driver.end, startTag(k.driverName, setAttr(k.driverAttr, "type", "raw"), k.driverEmpty)})
		} else {
			edits = append(edits, edit{k.tag.end, k.tag.end, "<driver name='qemu' type='raw'/>"})
		}
		for _, b := range k.backing {
			edits = append(edits, edit{lineStart(domXML, b.start), b.end, ""})
		}
	}
	var missing []string
	for p := range nbd {
		if !found[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: %s", ErrDomainDisk, strings.Join(missing, ", "))
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	at := 0
	for _, e := range edits {
		out.Write(domXML[at:e.start])
		out.WriteString(e.text)
		at = e.end
	}
	out.Write(domXML[at:])
	return out.Bytes(), nil
}

// span is a byte range [start, end) of the document; end 0 is none.
type span struct{ start, end int }

// edit replaces a span with text.
type edit struct {
	start, end int
	text       string
}

// diskSpans is where one <disk> and the children NBDDomain rewrites are.
type diskSpans struct {
	name                xml.Name
	attr                []xml.Attr
	typ, device, file   string
	tag, source, driver span
	driverName          xml.Name
	driverAttr          []xml.Attr
	driverEmpty         bool // <driver .../>
	backing             []span
}

// scanDisks finds the disks under /domain/devices with the byte spans of
// their start tag and of their <source>, <driver> and <backingStore>
// children. RawToken keeps prefixes as written, so nothing is rewritten
// by namespace translation; it does not match end tags, the stack does.
func scanDisks(doc []byte) ([]diskSpans, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var (
		stack []xml.Name
		disks []diskSpans
		cur   *diskSpans
		child span // the <source> or <backingStore> being read
	)
	for {
		start := int(dec.InputOffset())
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse the domain XML: %w", err)
		}
		end := int(dec.InputOffset())
		switch t := tok.(type) {
		case xml.StartElement:
			stack = append(stack, t.Name)
			switch {
			case len(stack) == 3 && isPath(stack, "domain", "devices", "disk"):
				disks = append(disks, diskSpans{name: t.Name, attr: t.Attr, tag: span{start, end},
					typ: attrOf(t.Attr, "type"), device: attrOf(t.Attr, "device")})
				cur = &disks[len(disks)-1]
			case len(stack) == 4 && cur != nil:
				switch t.Name {
				case xml.Name{Local: "source"}, xml.Name{Local: "backingStore"}:
					child = span{start, 0}
					if t.Name.Local == "source" && cur.source.end == 0 {
						cur.file = attrOf(t.Attr, "file")
					}
				case xml.Name{Local: "driver"}:
					cur.driver, cur.driverName, cur.driverAttr = span{start, end}, t.Name, t.Attr
					cur.driverEmpty = bytes.HasSuffix(doc[start:end], []byte("/>"))
				}
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return nil, fmt.Errorf("parse the domain XML: unexpected </%s> at byte %d", qname(t.Name), start)
			}
			if len(stack) == 4 && cur != nil && child != (span{}) {
				child.end = end
				if t.Name.Local == "source" && cur.source.end == 0 {
					cur.source = child
				} else if t.Name.Local == "backingStore" {
					cur.backing = append(cur.backing, child)
				}
				child = span{}
			}
			if len(stack) == 3 {
				cur = nil
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("parse the domain XML: <%s> is not closed", qname(stack[len(stack)-1]))
	}
	return disks, nil
}

func isPath(stack []xml.Name, names ...string) bool {
	for i, n := range names {
		if stack[i] != (xml.Name{Local: n}) {
			return false
		}
	}
	return true
}

func attrOf(attrs []xml.Attr, name string) string {
	for _, a := range attrs {
		if a.Name == (xml.Name{Local: name}) {
			return a.Value
		}
	}
	return ""
}

// setAttr returns attrs with name set to value, in place or appended.
func setAttr(attrs []xml.Attr, name, value string) []xml.Attr {
	out := append([]xml.Attr(nil), attrs...)
	for i, a := range out {
		if a.Name == (xml.Name{Local: name}) {
			out[i].Value = value
			return out
		}
	}
	return append(out, xml.Attr{Name: xml.Name{Local: name}, Value: value})
}

// qname is a raw name as written: prefix:local.
func qname(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// startTag writes a start tag in virsh's style (single quotes).
func startTag(name xml.Name, attrs []xml.Attr, empty bool) string {
	var b strings.Builder
	b.WriteString("<" + qname(name))
	for _, a := range attrs {
		b.WriteString(" " + qname(a.Name) + "='" + escape(a.Value) + "'")
	}
	if empty {
		b.WriteString("/")
	}
	b.WriteString(">")
	return b.String()
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}

func nbdSourceXML(s NBDSource) string {
	name := ""
	if s.Export != "" {
		name = " name='" + escape(s.Export) + "'"
	}
	return "<source protocol='nbd'" + name + "><host transport='unix' socket='" + escape(s.Socket) + "'/></source>"
}

// lineStart moves i back over the indentation and line break before it,
// so a removed element leaves no blank line.
func lineStart(doc []byte, i int) int {
	for i > 0 && (doc[i-1] == ' ' || doc[i-1] == '\t') {
		i--
	}
	if i > 0 && doc[i-1] == '\n' {
		i--
	}
	return i
}
