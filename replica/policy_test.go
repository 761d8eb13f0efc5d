package replica

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asr-project/asr/vault"
)

func TestRetryAfter(t *testing.T) {
	// 1, 2, 4, 8, 10 minutes apart, then every 30.
	want := []time.Duration{1, 3, 7, 15, 25, 55, 85}
	for i, w := range want {
		if got := RetryAfter(i + 1); got != w*time.Minute {
			t.Errorf("after %d failures: %v, want %v", i+1, got, w*time.Minute)
		}
	}
}

func TestCheckPolicy(t *testing.T) {
	if err := CheckPolicy(NewPolicy("gold")); err != nil {
		t.Fatalf("default policy refused: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(p *vault.Policy)
	}{
		{"frequency 10s", func(p *vault.Policy) { p.Frequency = 10 * time.Second }},
		{"negative retention", func(p *vault.Policy) { p.Retention = -time.Hour }},
		{"retention under frequency", func(p *vault.Policy) { p.Retention = time.Minute }},
		{"retention 0", func(p *vault.Policy) { p.Retention = 0 }},
		{"bad window", func(p *vault.Policy) { p.ResyncWindow = "25:00-06:00" }},
		{"freeze without thaw", func(p *vault.Policy) { p.FreezeCommand = "true" }},
		{"bad name", func(p *vault.Policy) { p.Name = "a b" }},
	} {
		p := NewPolicy("gold")
		c.edit(&p)
		if err := CheckPolicy(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
		}
	}
}

func TestDiskName(t *testing.T) {
	for in, want := range map[string]string{
		"/vms/web/os.vhd":       "os",
		"/vms/web/data 1.raw":   "data-1",
		"/vms/web/disk.img.vhd": "disk",
		"rel/x_y-z":             "x_y-z",
	} {
		if got := DiskName(in); got != want {
			t.Errorf("DiskName(%q) = %q, want %q", in, got, want)
		}
	}
}

// policyEngine is an engine on a new site with the default policy, gold,
// and VM web using gold.
func policyEngine(t *testing.T) *Engine {
	t.Helper()
	v, err := vault.Init(filepath.Join(t.TempDir(), "site.db"), "primary", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Vault: v}
	for _, p := range []vault.Policy{NewPolicy(DefaultPolicy), NewPolicy("gold")} {
		if err := e.CreatePolicy(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Update(func(tx *vault.Tx) error { return tx.PutItem(vault.Item{VM: "web", Policy: "gold"}) }); err != nil {
		t.Fatal(err)
	}
	return e
}

func storedPolicy(t *testing.T, e *Engine, name string) vault.Policy {
	t.Helper()
	var p vault.Policy
	if err := e.Vault.View(func(tx *vault.Tx) (err error) { p, err = tx.Policy(name); return }); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreatePolicy(t *testing.T) {
	e := policyEngine(t)
	if err := e.CreatePolicy(NewPolicy("gold")); !errors.Is(err, ErrExists) {
		t.Errorf("second gold: %v, want ErrExists", err)
	}
	p := NewPolicy("zero")
	p.Retention = 0
	if err := e.CreatePolicy(p); !errors.Is(err, ErrInvalid) {
		t.Errorf("retention 0: %v, want ErrInvalid", err)
	}
}

func TestSetPolicy(t *testing.T) {
	e := policyEngine(t)
	got, err := e.SetPolicy("gold", func(p *vault.Policy) { p.Retention = 48 * time.Hour })
	if err != nil {
		t.Fatal(err)
	}
	want := NewPolicy("gold")
	want.Retention = 48 * time.Hour
	if got != want || storedPolicy(t, e, "gold") != want {
		t.Errorf("after set: returned %+v, stored %+v, want %+v", got, storedPolicy(t, e, "gold"), want)
	}
	for name, change := range map[string]func(*vault.Policy){
		"retention 0": func(p *vault.Policy) { p.Retention = 0 },
		"rename":      func(p *vault.Policy) { p.Name = "silver" },
	} {
		if _, err := e.SetPolicy("gold", change); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if storedPolicy(t, e, "gold") != want {
		t.Errorf("a refused change was stored: %+v", storedPolicy(t, e, "gold"))
	}
	if _, err := e.SetPolicy("nope", func(*vault.Policy) {}); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("unknown policy: %v, want ErrNotFound", err)
	}
}

func TestDeletePolicy(t *testing.T) {
	e := policyEngine(t)
	if err := e.DeletePolicy("gold"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "web") {
		t.Errorf("gold in use by web: %v, want ErrInUse naming web", err)
	}
	storedPolicy(t, e, "gold") // still there
	if err := e.DeletePolicy(DefaultPolicy); !errors.Is(err, ErrInvalid) {
		t.Errorf("default: %v, want ErrInvalid", err)
	}
	if err := e.DeletePolicy("nope"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("unknown: %v, want ErrNotFound", err)
	}
	if err := e.Vault.Update(func(tx *vault.Tx) error { return tx.DeleteItem("web") }); err != nil {
		t.Fatal(err)
	}
	if err := e.DeletePolicy("gold"); err != nil {
		t.Fatalf("unused gold: %v", err)
	}
	err := e.Vault.View(func(tx *vault.Tx) error { _, err := tx.Policy("gold"); return err })
	if !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("gold after delete: %v, want ErrNotFound", err)
	}
}
