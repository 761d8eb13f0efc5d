package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// domxmlSample is a domain as virsh dumpxml prints it.
const domxmlSample = `<domain type='kvm' id='3'>
  <name>web1</name>
  <uuid>0f0e8d5c-7b1a-4c1e-9a55-3f3c2d9b7a10</uuid>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <!-- the system disk -->
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' discard='unmap'/>
      <source file='/var/lib/libvirt/images/web1.qcow2' index='2'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/x/base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <boot order='1'/>
      <serial>sys-1</serial>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/web1-data.img' index='1'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/iso/debian.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
  </devices>
</domain>
`

const (
	domxmlSys  = "/var/lib/libvirt/images/web1.qcow2"
	domxmlData = "/var/lib/libvirt/images/web1-data.img"
)

func TestDomainDisks(t *testing.T) {
	got, err := DomainDisks([]byte(domxmlSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []DomainDisk{
		{Type: "file", Device: "disk", Source: domxmlSys, Target: "vda", Format: "qcow2"},
		{Type: "file", Device: "disk", Source: domxmlData, Target: "vdb", Format: "raw"},
		{Type: "file", Device: "cdrom", Source: "/iso/debian.iso", Target: "sda", Format: "raw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if _, err := DomainDisks([]byte("<domain><devices>")); err == nil {
		t.Fatal("truncated XML: no error")
	}
}

// domxmlParsed is what the tests check in a rewritten domain.
type domxmlParsed struct {
	Metadata struct {
		Inner string `xml:",innerxml"`
	} `xml:"metadata"`
	Disks []struct {
		Type   string `xml:"type,attr"`
		Driver struct {
			Name    string `xml:"name,attr"`
			Type    string `xml:"type,attr"`
			Cache   string `xml:"cache,attr"`
			Discard string `xml:"discard,attr"`
		} `xml:"driver"`
		Source struct {
			Protocol string `xml:"protocol,attr"`
			Name     string `xml:"name,attr"`
			Host     []struct {
				Transport string `xml:"transport,attr"`
				Socket    string `xml:"socket,attr"`
			} `xml:"host"`
		} `xml:"source"`
		Backing []struct{} `xml:"backingStore"`
		Boot    struct {
			Order string `xml:"order,attr"`
		} `xml:"boot"`
		Serial  string `xml:"serial"`
		Address struct {
			Bus string `xml:"bus,attr"`
		} `xml:"address"`
		Inner string `xml:",innerxml"`
	} `xml:"devices>disk"`
	Interfaces []struct {
		Type string `xml:"type,attr"`
	} `xml:"devices>interface"`
}

func TestNBDDomain(t *testing.T) {
	src := NBDSource{Export: "web1-sys", Socket: "/run/asr/web1.sock"}
	out, err := NBDDomain([]byte(domxmlSample), map[string]NBDSource{domxmlSys: src})
	if err != nil {
		t.Fatal(err)
	}
	disks, err := DomainDisks(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []DomainDisk{
		{Type: "network", Device: "disk", Source: "web1-sys", Target: "vda", Format: "raw"},
		{Type: "file", Device: "disk", Source: domxmlData, Target: "vdb", Format: "raw"},
		{Type: "file", Device: "cdrom", Source: "/iso/debian.iso", Target: "sda", Format: "raw"},
	}
	if !reflect.DeepEqual(disks, want) {
		t.Fatalf("got %+v\nwant %+v\n%s", disks, want, out)
	}

	var before, after domxmlParsed
	if err := xml.Unmarshal([]byte(domxmlSample), &before); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(out, &after); err != nil {
		t.Fatal(err)
	}
	d := after.Disks[0]
	if d.Source.Protocol != "nbd" || len(d.Source.Host) != 1 ||
		d.Source.Host[0].Transport != "unix" || d.Source.Host[0].Socket != src.Socket {
		t.Errorf("source: %+v", d.Source)
	}
	if d.Driver.Name != "qemu" || d.Driver.Type != "raw" || d.Driver.Cache != "none" || d.Driver.Discard != "unmap" {
		t.Errorf("driver: %+v", d.Driver)
	}
	if len(d.Backing) != 0 || strings.Contains(string(out), "base.qcow2") {
		t.Errorf("backingStore kept:\n%s", out)
	}
	if d.Boot.Order != "1" || d.Serial != "sys-1" || d.Address.Bus != "0x04" {
		t.Errorf("boot, serial or address lost: %+v", d)
	}
	for i := 1; i < 3; i++ {
		if after.Disks[i].Inner != before.Disks[i].Inner {
			t.Errorf("disk %d changed:\n%s\nwas\n%s", i, after.Disks[i].Inner, before.Disks[i].Inner)
		}
	}
	if len(after.Interfaces) != 1 || after.Metadata.Inner != before.Metadata.Inner ||
		!strings.Contains(after.Metadata.Inner, "libosinfo:os") {
		t.Errorf("interface or metadata lost:\n%s", out)
	}
	// Only the one disk's bytes change: the document before it and after
	// it is the original.
	i := strings.Index(domxmlSample, "<!-- the system disk -->")
	j := strings.Index(domxmlSample, "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>")
	if !strings.HasPrefix(string(out), domxmlSample[:i]) || !strings.HasSuffix(string(out), domxmlSample[j:]) {
		t.Errorf("bytes outside the disk changed:\n%s", out)
	}
	// Both disks: the empty <backingStore/> of the raw one goes too, with
	// its line.
	both, err := NBDDomain([]byte(domxmlSample), map[string]NBDSource{domxmlSys: src, domxmlData: {Socket: "/run/d.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(both), "backingStore") || strings.Contains(string(both), "\n\n") ||
		!strings.Contains(string(both), "<source protocol='nbd'><host transport='unix' socket='/run/d.sock'/></source>") {
		t.Errorf("both disks:\n%s", both)
	}
}

func TestNBDDomainErrors(t *testing.T) {
	s := NBDSource{Export: "x", Socket: "/run/x.sock"}
	once, err := NBDDomain([]byte(domxmlSample), map[string]NBDSource{domxmlSys: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, doc string
		nbd       map[string]NBDSource
		want      string // in the error
	}{
		{"missing", domxmlSample, map[string]NBDSource{domxmlSys: s, "/nope.qcow2": s, "/gone.img": s}, "/gone.img, /nope.qcow2"},
		{"cdrom", domxmlSample, map[string]NBDSource{"/iso/debian.iso": s}, "device='cdrom'"},
		{"twice", string(once), map[string]NBDSource{domxmlSys: s}, domxmlSys},
		{"no socket", domxmlSample, map[string]NBDSource{domxmlSys: {Export: "x"}}, "no socket"},
		{"bad XML", "<domain><devices></domain>", nil, "unexpected </domain>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NBDDomain([]byte(tc.doc), tc.nbd)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if tc.name != "bad XML" && tc.name != "no socket" && !errors.Is(err, ErrDomainDisk) {
				t.Fatalf("%v is not ErrDomainDisk", err)
			}
		})
	}
}

// TestNBDDomainVirshDefine checks that libvirt accepts the rewritten XML:
// it defines a small domain (not started) on a qcow2 file, rewritten to
// NBD, and reads it back. It needs a libvirtd (ASR_LIBVIRT_URI) and skips
// without one unless CI is set.
func TestNBDDomainVirshDefine(t *testing.T) {
	uri := os.Getenv("ASR_LIBVIRT_URI")
	if uri == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("ASR_LIBVIRT_URI is not set; run the tests with bash .ci/test")
		}
		t.Skip(`no libvirtd: eval "$(.ci/libvirt/libvirtd.sh start)" first`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "sys.qcow2")
	run("qemu-img", "create", "-q", "-f", "qcow2", img, "16M")
	rnd := make([]byte, 4)
	rand.Read(rnd)
	name := "asr-domxml-" + hex.EncodeToString(rnd)
	doc := `<domain type='qemu'>
  <name>` + name + `</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='` + img + `'/>
      <target dev='vda' bus='virtio'/>
      <boot order='1'/>
    </disk>
  </devices>
</domain>
`
	sock := filepath.Join(dir, "nbd.sock")
	out, err := NBDDomain([]byte(doc), map[string]NBDSource{img: {Export: "sys", Socket: sock}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	run("virsh", "-q", "-c", uri, "define", path)
	t.Cleanup(func() {
		exec.Command("virsh", "-q", "-c", uri, "undefine", name).Run()
	})
	back := run("virsh", "-q", "-c", uri, "dumpxml", "--inactive", name)
	var got domxmlParsed
	if err := xml.Unmarshal([]byte(back), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Disks) != 1 {
		t.Fatalf("disks: %s", back)
	}
	d := got.Disks[0]
	if d.Type != "network" || d.Source.Protocol != "nbd" || d.Source.Name != "sys" || len(d.Source.Host) != 1 ||
		d.Source.Host[0].Transport != "unix" || d.Source.Host[0].Socket != sock ||
		d.Driver.Type != "raw" || d.Boot.Order != "1" {
		t.Fatalf("libvirt kept:\n%s", back)
	}
}
