package failover

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// blobs is a target whose disks have URLs, as Azure's do.
type blobs struct{ target.Target }

func (blobs) Local() bool { return false }
func (blobs) DiskURL(disk string) string {
	return "https://acct.blob.core.windows.net/c/disks/" + disk + ".vhd"
}

func TestTemplateImportsEachDiskAndAttachesThem(t *testing.T) {
	for _, tc := range []struct {
		kind, size, subnet string
	}{
		{KindUnplanned, "Standard_D4s_v5", "subnet-app"},
		{KindTest, defaultSize, "subnet-test"},
	} {
		dir := t.TempDir()
		s := &session{t: blobs{}, it: vault.Item{VM: "web", Machine: &vault.Machine{Network: "subnet-app", TestNetwork: "subnet-test"}}}
		if tc.size != defaultSize {
			s.it.Machine.Size = tc.size
		}
		f := &vault.Failover{Kind: tc.kind, Name: "web", Dir: dir, Disks: []vault.RecoveryDisk{
			{Name: "os", Path: "recovery/web/os"}, {Name: "data", Path: "recovery/web/data"}}}
		if err := s.writeTemplate(f); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(templatePath(f))
		if err != nil {
			t.Fatal(err)
		}
		var tmpl struct {
			Parameters map[string]struct {
				DefaultValue any `json:"defaultValue"`
			} `json:"parameters"`
			Resources []struct {
				Type       string `json:"type"`
				Properties struct {
					CreationData struct {
						SourceURI string `json:"sourceUri"`
					} `json:"creationData"`
					StorageProfile struct {
						OSDisk struct {
							CreateOption string `json:"createOption"`
						} `json:"osDisk"`
						DataDisks []struct {
							Lun int `json:"lun"`
						} `json:"dataDisks"`
					} `json:"storageProfile"`
				} `json:"properties"`
			} `json:"resources"`
		}
		if err := json.Unmarshal(data, &tmpl); err != nil {
			t.Fatalf("template is not JSON: %v", err)
		}
		if got := tmpl.Parameters["vmSize"].DefaultValue; got != tc.size {
			t.Errorf("%s: vmSize %v, want %s", tc.kind, got, tc.size)
		}
		if got := tmpl.Parameters["subnetId"].DefaultValue; got != tc.subnet {
			t.Errorf("%s: subnetId %v, want %s", tc.kind, got, tc.subnet)
		}
		var types []string
		for _, r := range tmpl.Resources {
			types = append(types, r.Type)
		}
		want := []string{"Microsoft.Compute/disks", "Microsoft.Compute/disks", "Microsoft.Network/networkInterfaces", "Microsoft.Compute/virtualMachines"}
		if len(types) != len(want) {
			t.Fatalf("%s: resources %v, want %v", tc.kind, types, want)
		}
		for i := range want {
			if types[i] != want[i] {
				t.Fatalf("%s: resources %v, want %v", tc.kind, types, want)
			}
		}
		if got := tmpl.Resources[1].Properties.CreationData.SourceURI; got != "https://acct.blob.core.windows.net/c/disks/recovery/web/data.vhd" {
			t.Errorf("data disk imports from %q", got)
		}
		vm := tmpl.Resources[3].Properties.StorageProfile
		if vm.OSDisk.CreateOption != "Attach" || len(vm.DataDisks) != 1 || vm.DataDisks[0].Lun != 0 {
			t.Errorf("VM storage profile %+v: want the OS disk attached and one data disk at LUN 0", vm)
		}
	}
}
