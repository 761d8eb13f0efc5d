package replica

import (
	"errors"
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
