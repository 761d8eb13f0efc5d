package azblob

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

func cfgOf(m map[string]string) target.Config {
	return target.Config{Lookup: func(k string) string { return m[k] }}
}

// A made-up key: valid base64, never a real account's.
const fakeKey = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5YWJjZGVmZ2hpams="

func TestParseURL(t *testing.T) {
	good := map[string]location{
		"azblob://acct1/cont":           {"acct1", "cont", ""},
		"azblob://acct1/cont/":          {"acct1", "cont", ""},
		"azblob://acct1/cont/site-a":    {"acct1", "cont", "site-a/"},
		"azblob://acct1/cont/a/b.c_d/":  {"acct1", "cont", "a/b.c_d/"},
		"azblob://devstoreaccount1/a-b": {"devstoreaccount1", "a-b", ""},
	}
	for raw, want := range good {
		u, _ := url.Parse(raw)
		got, err := parseURL(u)
		if err != nil || got != want {
			t.Errorf("parseURL(%s) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{
		"azblob://Acct/cont",                        // upper case account
		"azblob://ac/cont",                          // too short
		"azblob://acct1/",                           // no container
		"azblob://acct1/Cont",                       // upper case container
		"azblob://acct1/a--b",                       // double hyphen
		"azblob://acct1/-ab",                        // leading hyphen
		"azblob://acct1/cont/../x",                  // dot-dot segment
		"azblob://acct1/cont/a b",                   // space
		"azblob://acct1/cont?sv=1&sig=abc",          // SAS in the URL
		"azblob://user:pw@acct1/cont",               // credentials in the URL
		"file://acct1/cont",                         // wrong scheme
		"azblob://acct1/cont#frag",                  // fragment
		"azblob://acct1:99/cont",                    // port
		"azblob://acct1/cont/a//b",                  // empty segment
		"azblob://acct1/" + strings.Repeat("c", 64), // long container
	} {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if _, err := parseURL(u); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("parseURL(%s): error %v, want ErrInvalid", raw, err)
		}
		if _, err := parseURL(u); err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("parseURL(%s) error repeats the password: %v", raw, err)
		}
	}
}

func TestCredentials(t *testing.T) {
	cs := func(endpoint string) string {
		return "DefaultEndpointsProtocol=http;AccountName=acct1;AccountKey=" + fakeKey + ";BlobEndpoint=" + endpoint + ";"
	}
	for _, c := range []struct {
		name     string
		env      map[string]string
		endpoint string // "" wants an error
		kind     string
		err      error
	}{
		{"connection string, loopback http", map[string]string{EnvConnectionString: cs("http://127.0.0.1:10000/acct1")}, "http://127.0.0.1:10000/acct1", "key", nil},
		{"connection string, 127.0.0.2", map[string]string{EnvConnectionString: cs("http://127.0.0.2:1/acct1")}, "http://127.0.0.2:1/acct1", "key", nil},
		{"connection string, localhost", map[string]string{EnvConnectionString: cs("http://localhost:1/acct1")}, "http://localhost:1/acct1", "key", nil},
		{"connection string, ::1", map[string]string{EnvConnectionString: cs("http://[::1]:1/acct1")}, "http://[::1]:1/acct1", "key", nil},
		{"connection string, remote http", map[string]string{EnvConnectionString: cs("http://10.1.2.3:10000/acct1")}, "", "", target.ErrInvalid},
		{"connection string, lookalike host", map[string]string{EnvConnectionString: cs("http://127.0.0.1.example.com/acct1")}, "", "", target.ErrInvalid},
		{"connection string, no endpoint", map[string]string{EnvConnectionString: "AccountName=acct1;AccountKey=" + fakeKey}, "https://acct1.blob.core.windows.net", "key", nil},
		{"connection string, suffix", map[string]string{EnvConnectionString: "AccountName=acct1;AccountKey=" + fakeKey + ";EndpointSuffix=core.chinacloudapi.cn"}, "https://acct1.blob.core.chinacloudapi.cn", "key", nil},
		{"connection string, other account", map[string]string{EnvConnectionString: strings.Replace(cs("https://x"), "acct1", "acct2", 1)}, "", "", target.ErrInvalid},
		{"connection string, SAS", map[string]string{EnvConnectionString: "BlobEndpoint=https://acct1.blob.core.windows.net;SharedAccessSignature=sv=1&sig=abc"}, "https://acct1.blob.core.windows.net", "sas", nil},
		{"connection string, no secret", map[string]string{EnvConnectionString: "AccountName=acct1"}, "", "", target.ErrInvalid},
		{"connection string, bad key", map[string]string{EnvConnectionString: "AccountName=acct1;AccountKey=not*base64"}, "", "", target.ErrInvalid},
		{"connection string, garbage", map[string]string{EnvConnectionString: "garbage"}, "", "", target.ErrInvalid},
		{"development storage", map[string]string{EnvConnectionString: "UseDevelopmentStorage=true"}, "", "", target.ErrInvalid}, // account acct1 != devstoreaccount1
		{"key", map[string]string{EnvKey: fakeKey}, "https://acct1.blob.core.windows.net", "key", nil},
		{"key, endpoint", map[string]string{EnvKey: fakeKey, EnvBlobEndpoint: "http://127.0.0.1:5/acct1/"}, "http://127.0.0.1:5/acct1", "key", nil},
		{"key, remote http endpoint", map[string]string{EnvKey: fakeKey, EnvBlobEndpoint: "http://acct1.blob.core.windows.net"}, "", "", target.ErrInvalid},
		{"key, ftp endpoint", map[string]string{EnvKey: fakeKey, EnvBlobEndpoint: "ftp://127.0.0.1/"}, "", "", target.ErrInvalid},
		{"SAS", map[string]string{EnvSASToken: "?sv=1&sig=abc"}, "https://acct1.blob.core.windows.net", "sas", nil},
		{"identity", map[string]string{}, "https://acct1.blob.core.windows.net", "token", nil},
	} {
		cred, err := resolveCredentials("acct1", cfgOf(c.env))
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: error %v, want %v", c.name, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), fakeKey) {
				t.Errorf("%s: error shows the key: %v", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		kind := map[bool]string{true: "key"}[cred.sharedKey != nil] + map[bool]string{true: "sas"}[cred.sas != ""] + map[bool]string{true: "token"}[cred.token != nil]
		if cred.endpoint != c.endpoint || kind != c.kind {
			t.Errorf("%s: endpoint %q kind %q, want %q %q", c.name, cred.endpoint, kind, c.endpoint, c.kind)
		}
	}
	// The development shortcut works for Azurite's own account.
	cred, err := resolveCredentials(devAccount, cfgOf(map[string]string{EnvConnectionString: "UseDevelopmentStorage=true"}))
	if err != nil || cred.endpoint != "http://127.0.0.1:10000/"+devAccount || !cred.loopback() {
		t.Errorf("UseDevelopmentStorage: %+v, %v", cred, err)
	}
}

func TestCheckNames(t *testing.T) {
	for _, ok := range []string{"d", "vm1-disk0", "a/b", "A.b_c-9"} {
		if err := checkDisk(ok); err != nil {
			t.Errorf("checkDisk(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a//b", "/a", "a/", "..", "a/./b", "ü", strings.Repeat("x", maxNameLen+1)} {
		if err := checkDisk(bad); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("checkDisk(%q): error %v, want ErrInvalid", bad, err)
		}
	}
	if err := checkSnapshot("d", "a/b"); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("snapshot name with a slash: error %v, want ErrInvalid", err)
	}
	for _, bad := range []string{"", "a\\b", "a/", "/a", "a/../b", "x.", "a\nb"} {
		if err := checkKey(bad); !errors.Is(err, target.ErrInvalid) {
			t.Errorf("checkKey(%q): error %v, want ErrInvalid", bad, err)
		}
	}
	if err := checkKey("vm1/points/2024-01-01T00:00:00Z.json"); err != nil {
		t.Errorf("checkKey of a point name: %v", err)
	}
}

func FuzzParseConnectionString(f *testing.F) {
	f.Add("AccountName=a;AccountKey=" + fakeKey + ";BlobEndpoint=http://127.0.0.1:1/a;")
	f.Add("UseDevelopmentStorage=true")
	f.Add("SharedAccessSignature=sv=1&sig=x==;BlobEndpoint=https://h")
	f.Fuzz(func(t *testing.T, cs string) {
		cred, err := resolveCredentials("acct1", cfgOf(map[string]string{EnvConnectionString: cs}))
		if err != nil {
			if !errors.Is(err, target.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if err := checkEndpoint("acct1", cred.endpoint); err != nil {
			t.Fatalf("accepted endpoint %q fails the HTTPS rule: %v", cred.endpoint, err)
		}
	})
}
