package failover

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/vault"
)

// defaultSize is the Azure VM size when asr vm set gave none.
const defaultSize = "Standard_B2s"

func templatePath(f *vault.Failover) string { return filepath.Join(f.Dir, f.Name+".template.json") }

// diskURL is a target disk's URL for a deployment, or its name on a target
// without URLs.
func diskURL(t target.Target, disk string) string {
	if l, ok := t.(target.Locator); ok {
		return l.DiskURL(disk)
	}
	return disk
}

// writeTemplate writes the ARM template that makes managed disks from the
// recovery page blobs and a VM on them: the first disk is the OS disk,
// the others data disks. The storage account and, when asr vm set gave
// no network, the subnet are parameters the deployment must supply. It is
// written as a .partial and renamed, so it is whole or absent.
func (s *session) writeTemplate(f *vault.Failover) error {
	m := s.it.Machine
	if m == nil {
		m = &vault.Machine{}
	}
	size, subnet := m.Size, m.Network
	if f.Kind == KindTest {
		subnet = m.TestNetwork
	}
	if size == "" {
		size = defaultSize
	}
	subnetParam := map[string]any{"type": "string", "metadata": map[string]string{"description": "resource ID of the subnet the VM's NIC joins"}}
	if subnet != "" {
		subnetParam["defaultValue"] = subnet
	}
	params := map[string]any{
		"vmName":           map[string]any{"type": "string", "defaultValue": f.Name},
		"vmSize":           map[string]any{"type": "string", "defaultValue": size},
		"osType":           map[string]any{"type": "string", "defaultValue": "Linux", "allowedValues": []string{"Linux", "Windows"}},
		"storageAccountId": map[string]any{"type": "string", "metadata": map[string]string{"description": "resource ID of the storage account holding the recovery page blobs"}},
		"subnetId":         subnetParam,
	}
	var resources, dataDisks []any
	var depends []string
	var osDisk map[string]any
	for i, d := range f.Disks {
		name := fmt.Sprintf("[concat(parameters('vmName'), '-%s')]", d.Name)
		props := map[string]any{"creationData": map[string]any{
			"createOption": "Import", "storageAccountId": "[parameters('storageAccountId')]", "sourceUri": diskURL(s.t, d.Path)}}
		if i == 0 {
			props["osType"] = "[parameters('osType')]"
		}
		resources = append(resources, map[string]any{"type": "Microsoft.Compute/disks", "apiVersion": "2023-04-02",
			"name": name, "location": "[resourceGroup().location]", "sku": map[string]string{"name": "Standard_LRS"}, "properties": props})
		id := fmt.Sprintf("[resourceId('Microsoft.Compute/disks', concat(parameters('vmName'), '-%s'))]", d.Name)
		depends = append(depends, id)
		if i == 0 {
			osDisk = map[string]any{"osType": "[parameters('osType')]", "createOption": "Attach", "managedDisk": map[string]string{"id": id}}
		} else {
			dataDisks = append(dataDisks, map[string]any{"lun": i - 1, "createOption": "Attach", "managedDisk": map[string]string{"id": id}})
		}
	}
	nic := "[resourceId('Microsoft.Network/networkInterfaces', concat(parameters('vmName'), '-nic'))]"
	resources = append(resources, map[string]any{"type": "Microsoft.Network/networkInterfaces", "apiVersion": "2023-04-01",
		"name": "[concat(parameters('vmName'), '-nic')]", "location": "[resourceGroup().location]",
		"properties": map[string]any{"ipConfigurations": []any{map[string]any{"name": "ipconfig1",
			"properties": map[string]any{"privateIPAllocationMethod": "Dynamic", "subnet": map[string]string{"id": "[parameters('subnetId')]"}}}}}})
	resources = append(resources, map[string]any{"type": "Microsoft.Compute/virtualMachines", "apiVersion": "2023-03-01",
		"name": "[parameters('vmName')]", "location": "[resourceGroup().location]", "dependsOn": append(depends, nic),
		"properties": map[string]any{
			"hardwareProfile": map[string]string{"vmSize": "[parameters('vmSize')]"},
			"storageProfile":  map[string]any{"osDisk": osDisk, "dataDisks": dataDisks},
			"networkProfile":  map[string]any{"networkInterfaces": []any{map[string]string{"id": nic}}},
		}})
	tmpl := map[string]any{
		"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"contentVersion": "1.0.0.0",
		"parameters":     params,
		"resources":      resources,
	}
	data, err := json.MarshalIndent(tmpl, "", "  ")
	if err != nil {
		return err
	}
	path := templatePath(f)
	if err := os.WriteFile(path+".partial", append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, errors.Join(replica.ErrLocal, err))
	}
	if err := os.Rename(path+".partial", path); err != nil {
		return fmt.Errorf("write %s: %w", path, errors.Join(replica.ErrLocal, err))
	}
	return nil
}
