package azblob

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/asr-project/asr/replica/target"
)

// Settings read through target.Config.Lookup, first match wins.
const (
	EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	EnvKey              = "AZURE_STORAGE_KEY"
	EnvSASToken         = "AZURE_STORAGE_SAS_TOKEN"
	// EnvBlobEndpoint overrides https://ACCOUNT.blob.core.windows.net for
	// EnvKey, EnvSASToken and Azure identity.
	EnvBlobEndpoint = "AZURE_STORAGE_BLOB_ENDPOINT"
)

// Azurite's published development account; not a secret.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// credentials say where the account is and how requests are signed:
// exactly one of sharedKey, sas, token is set.
type credentials struct {
	endpoint  string // account endpoint, no trailing slash
	sharedKey *container.SharedKeyCredential
	sas       string // without the leading '?'
	token     azcore.TokenCredential
	secrets   []string
}

func (c *credentials) newContainerClient(name string, o *container.ClientOptions) (*container.Client, error) {
	u := c.endpoint + "/" + name
	switch {
	case c.sharedKey != nil:
		return container.NewClientWithSharedKeyCredential(u, c.sharedKey, o)
	case c.sas != "":
		return container.NewClientWithNoCredential(u+"?"+c.sas, o)
	default:
		return container.NewClient(u, c.token, o)
	}
}

// loopback reports an endpoint on this machine: an emulator.
func (c *credentials) loopback() bool {
	u, err := url.Parse(c.endpoint)
	return err == nil && isLoopback(u.Hostname())
}

// resolveCredentials picks the first configured way to reach account.
func resolveCredentials(account string, cfg target.Config) (*credentials, error) {
	lookup := cfg.Lookup
	if lookup == nil {
		lookup = os.Getenv
	}
	bad := func(format string, args ...any) (*credentials, error) {
		return nil, fmt.Errorf("azblob account %q: %s: %w", account, fmt.Sprintf(format, args...), target.ErrInvalid)
	}
	c := &credentials{}
	if cs := strings.TrimSpace(lookup(EnvConnectionString)); cs != "" {
		c.secrets = append(c.secrets, cs)
		f, err := parseConnectionString(cs)
		if err != nil {
			return bad("%s: %v", EnvConnectionString, err)
		}
		name := f["accountname"]
		if name != "" && name != account {
			return bad("%s is for account %q, but the URL names %q; fix one of them", EnvConnectionString, name, account)
		}
		c.endpoint = f["blobendpoint"]
		if c.endpoint == "" {
			if name == "" {
				return bad("%s has neither AccountName nor BlobEndpoint", EnvConnectionString)
			}
			proto, suffix := f["defaultendpointsprotocol"], f["endpointsuffix"]
			if proto == "" {
				proto = "https"
			}
			if suffix == "" {
				suffix = "core.windows.net"
			}
			c.endpoint = proto + "://" + account + ".blob." + suffix
		}
		switch {
		case f["accountkey"] != "":
			if name == "" {
				return bad("%s has AccountKey but no AccountName", EnvConnectionString)
			}
			c.secrets = append(c.secrets, f["accountkey"])
			c.sharedKey, err = container.NewSharedKeyCredential(account, f["accountkey"])
			if err != nil {
				return bad("%s: AccountKey is not valid base64; copy it again from the portal", EnvConnectionString)
			}
		case f["sharedaccesssignature"] != "":
			c.sas = strings.TrimPrefix(f["sharedaccesssignature"], "?")
			c.secrets = append(c.secrets, c.sas)
		default:
			return bad("%s has neither AccountKey nor SharedAccessSignature", EnvConnectionString)
		}
		return c, checkEndpoint(account, c.endpoint)
	}
	c.endpoint = strings.TrimSpace(lookup(EnvBlobEndpoint))
	if c.endpoint == "" {
		c.endpoint = "https://" + account + ".blob.core.windows.net"
	}
	c.endpoint = strings.TrimSuffix(c.endpoint, "/")
	if err := checkEndpoint(account, c.endpoint); err != nil {
		return nil, err
	}
	if key := strings.TrimSpace(lookup(EnvKey)); key != "" {
		c.secrets = append(c.secrets, key)
		var err error
		c.sharedKey, err = container.NewSharedKeyCredential(account, key)
		if err != nil {
			return bad("%s is not valid base64; copy the key again from the portal", EnvKey)
		}
		return c, nil
	}
	if sas := strings.TrimPrefix(strings.TrimSpace(lookup(EnvSASToken)), "?"); sas != "" {
		c.sas = sas
		c.secrets = append(c.secrets, sas)
		return c, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("azblob account %q: no %s, %s or %s set, and Azure identity is not configured (%v): %w",
			account, EnvConnectionString, EnvKey, EnvSASToken, err, target.ErrAuth)
	}
	c.token = cred
	return c, nil
}

// parseConnectionString splits "Key=Value;..." into lower-cased keys.
// Values may contain '=' (base64 keys, SAS tokens). Error text never
// repeats a value.
func parseConnectionString(cs string) (map[string]string, error) {
	f := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("a part has no Key=Value form; want Key=Value;Key=Value")
		}
		f[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if strings.EqualFold(f["usedevelopmentstorage"], "true") {
		f["accountname"] = devAccount
		f["accountkey"] = devKey
		f["blobendpoint"] = "http://127.0.0.1:10000/" + devAccount
	}
	f["blobendpoint"] = strings.TrimSuffix(f["blobendpoint"], "/")
	return f, nil
}

// checkEndpoint refuses plain HTTP except to a loopback host (Azurite):
// shared-key signatures and SAS tokens must not cross a network in clear.
func checkEndpoint(account, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("azblob account %q: blob endpoint %q is not an http(s) URL: %w", account, endpoint, target.ErrInvalid)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("azblob account %q: blob endpoint %q uses plain HTTP to a non-loopback host; use https (plain HTTP is allowed only for 127.0.0.0/8, ::1 and localhost): %w",
			account, endpoint, target.ErrInvalid)
	default:
		return fmt.Errorf("azblob account %q: blob endpoint %q: scheme must be https: %w", account, endpoint, target.ErrInvalid)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
