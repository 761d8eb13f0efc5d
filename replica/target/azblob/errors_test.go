package azblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/asr-project/asr/replica/target"
)

// fakeTransport answers every request with fn, in place of the network.
type fakeTransport func(*http.Request) (*http.Response, error)

func (f fakeTransport) Do(r *http.Request) (*http.Response, error) { return f(r) }

// fakeTarget opens a Target whose requests go to fn, without retries.
func fakeTarget(t *testing.T, cfg target.Config, fn fakeTransport) *Target {
	t.Helper()
	o := defaultOptions()
	o.transport = fn
	o.retry = policy.RetryOptions{MaxRetries: -1}
	o.probe = false
	u, _ := url.Parse("azblob://acct1/cont/pfx")
	tg, err := open(t.Context(), u, cfg, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return tg
}

var keyCfg = cfgOf(map[string]string{EnvConnectionString: "AccountName=acct1;AccountKey=" + fakeKey + ";BlobEndpoint=https://acct1.example.test"})

// storageError is an Azure Storage error response.
func storageError(r *http.Request, status int, code, msg string) *http.Response {
	h := http.Header{"X-Ms-Request-Id": {"req-42"}, "Content-Type": {"application/xml"}}
	if code != "" {
		h.Set("X-Ms-Error-Code", code)
	}
	body := ""
	if r.Method != http.MethodHead {
		body = fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s
RequestId:req-42
Time:2024-01-01T00:00:00.0000000Z</Message></Error>`, code, msg)
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h, Request: r,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

func TestErrorMapping(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		want   error
	}{
		{403, "AuthenticationFailed", target.ErrAuth},
		{403, "AuthorizationPermissionMismatch", target.ErrAuth},
		{403, "InsufficientAccountPermissions", target.ErrAuth},
		{403, "", target.ErrAuth},
		{401, "", target.ErrAuth},
		{404, "BlobNotFound", target.ErrNotFound},
		{404, "ContainerNotFound", target.ErrNotFound},
		{404, "", target.ErrNotFound},
		{409, "BlobAlreadyExists", target.ErrExists},
		{409, "LeaseIdMissing", target.ErrExists},
		{412, "ConditionNotMet", target.ErrUnavailable},
		{400, "InvalidHeaderValue", target.ErrInvalid},
		{416, "InvalidRange", target.ErrInvalid},
		{429, "", target.ErrUnavailable},
		{500, "InternalError", target.ErrUnavailable},
		{503, "ServerBusy", target.ErrUnavailable},
		{504, "", target.ErrUnavailable},
	} {
		name := fmt.Sprintf("%d %s", c.status, c.code)
		tg := fakeTarget(t, keyCfg, func(r *http.Request) (*http.Response, error) {
			return storageError(r, c.status, c.code, "the service says no"), nil
		})
		// A GET (error body) and a HEAD (code in a header only).
		_, errGet := tg.GetObject(t.Context(), "m.json")
		_, errHead := tg.DiskSize(t.Context(), "d")
		for _, err := range []error{errGet, errHead} {
			if !errors.Is(err, c.want) {
				t.Errorf("%s: error %v, want %v", name, err, c.want)
			}
			var re *azcore.ResponseError
			if errors.As(err, &re) {
				t.Errorf("%s: the SDK error is reachable through Unwrap: %v", name, err)
			}
		}
		if !strings.Contains(errGet.Error(), "pfx/objects/m.json") || !strings.Contains(errGet.Error(), "req-42") {
			t.Errorf("%s: error does not name the blob and the request: %v", name, errGet)
		}
		if c.code != "" && !strings.Contains(errGet.Error(), "the service says no") {
			t.Errorf("%s: error drops the service's message: %v", name, errGet)
		}
	}
}

func TestErrorMappingTransport(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tg := fakeTarget(t, keyCfg, func(r *http.Request) (*http.Response, error) { return nil, refused })
	if err := tg.WritePages(t.Context(), "d", 0, make([]byte, 512)); !errors.Is(err, target.ErrUnavailable) {
		t.Errorf("connection refused: error %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := tg.GetObject(ctx, "m")
	if !errors.Is(err, context.Canceled) || errors.Is(err, target.ErrUnavailable) {
		t.Errorf("cancelled call: error %v, want context.Canceled only", err)
	}
}

// TestErrorsHideSecrets feeds credentials back through every path an error
// text takes: the service's message, and a network error that quotes the
// request URL (which carries a SAS token).
func TestErrorsHideSecrets(t *testing.T) {
	leak := "echo " + fakeKey + " AccountKey=" + fakeKey + "; https://x/y?sv=1&sig=OTHERSIG123 SharedAccessSignature=sv=1&sig=Z"
	tg := fakeTarget(t, keyCfg, func(r *http.Request) (*http.Response, error) {
		return storageError(r, 403, "AuthenticationFailed", leak), nil
	})
	_, err := tg.GetObject(t.Context(), "m")
	if !errors.Is(err, target.ErrAuth) {
		t.Fatalf("error %v, want ErrAuth", err)
	}
	for _, secret := range []string{fakeKey, "OTHERSIG123", "sig=Z"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows %q: %v", secret, err)
		}
	}

	const sas = "sv=2024-01-01&sp=rwdl&sig=SUPERSECRETSIG%3D"
	sawSAS := false
	tg = fakeTarget(t, cfgOf(map[string]string{EnvSASToken: sas}), func(r *http.Request) (*http.Response, error) {
		sawSAS = sawSAS || strings.Contains(r.URL.RawQuery, "SUPERSECRETSIG")
		return nil, &url.Error{Op: r.Method, URL: r.URL.String(), Err: errors.New("connection reset by peer")}
	})
	err = tg.WritePages(t.Context(), "d", 0, make([]byte, 512))
	if !sawSAS {
		t.Fatal("the request did not carry the SAS token; the test proves nothing")
	}
	if !errors.Is(err, target.ErrUnavailable) || strings.Contains(err.Error(), "SUPERSECRETSIG") {
		t.Errorf("error %v: want ErrUnavailable without the SAS signature", err)
	}
}

func TestScrub(t *testing.T) {
	got := scrub("a sig=abc&x=1 AccountKey=k/+=;B SharedAccessSignature=s SIG=q mysecretkey", []string{"mysecretkey", "short"})
	want := "a sig=REDACTED&x=1 AccountKey=REDACTED;B SharedAccessSignature=REDACTED SIG=REDACTED REDACTED"
	if got != want {
		t.Errorf("scrub = %q, want %q", got, want)
	}
}
