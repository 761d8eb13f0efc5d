package azblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/asr-project/asr/replica/target"
	"github.com/asr-project/asr/replica/target/targettest"
)

// TestMain raises the default -test.parallel: the Azurite tests wait on
// the emulator far more than they use a CPU, and with GOMAXPROCS=2 the
// conformance suite would otherwise take twice as long.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}

// azurite returns the connection string of the emulator the tests use.
// Without one they skip, except under CI where a missing emulator is a
// broken setup.
func azurite(t *testing.T) string {
	t.Helper()
	cs := os.Getenv(EnvConnectionString)
	if cs == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is unset under CI: .ci/run must start Azurite with eval \"$(.ci/azurite/azurite.sh start)\"", EnvConnectionString)
		}
		t.Skipf("%s is unset: run eval \"$(.ci/azurite/azurite.sh start)\" to test against Azurite", EnvConnectionString)
	}
	return cs
}

// testContainer names a fresh container and deletes it when the test ends.
func testContainer(t *testing.T, cs string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "asrtest-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		c, err := container.NewClientFromConnectionString(cs, name, nil)
		if err != nil {
			t.Errorf("cleanup client for container %s: %v", name, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = c.Delete(ctx, nil)
	})
	return name
}

// accountOf reads AccountName from a connection string.
func accountOf(t *testing.T, cs string) string {
	t.Helper()
	f, err := parseConnectionString(cs)
	if err != nil || f["accountname"] == "" {
		t.Fatalf("%s has no AccountName", EnvConnectionString)
	}
	return f["accountname"]
}

func lookupCS(cs string) target.Config {
	return target.Config{Lookup: func(k string) string {
		if k == EnvConnectionString {
			return cs
		}
		return ""
	}}
}

// testOptions retry fast so fault tests stay short.
func testOptions() options {
	o := defaultOptions()
	o.retry = policy.RetryOptions{MaxRetries: 5, TryTimeout: 10 * time.Second, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}
	return o
}

// openAzurite opens azblob://ACCOUNT/CONTAINER/PREFIX on the emulator.
func openAzurite(t *testing.T, cs, cont, prefix string, o options) *Target {
	t.Helper()
	u, err := url.Parse("azblob://" + accountOf(t, cs) + "/" + cont + "/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := open(t.Context(), u, lookupCS(cs), o)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// withEndpoint points a connection string's BlobEndpoint elsewhere.
func withEndpoint(t *testing.T, cs, endpoint string) string {
	t.Helper()
	var parts []string
	for _, p := range strings.Split(cs, ";") {
		if p != "" && !strings.HasPrefix(strings.ToLower(p), "blobendpoint=") {
			parts = append(parts, p)
		}
	}
	return strings.Join(append(parts, "BlobEndpoint="+endpoint), ";")
}

func TestConformance(t *testing.T) {
	cs := azurite(t)
	cont := testContainer(t, cs)
	account := accountOf(t, cs)
	// Through target.Open, so the scheme registration is covered too. All
	// subtests share the container, as real deployments do.
	targettest.Run(t, func(t *testing.T) target.Target {
		tg, err := target.Open(t.Context(), "azblob://"+account+"/"+cont+"/conformance", lookupCS(cs))
		if err != nil {
			t.Fatalf("target.Open: %v", err)
		}
		return tg
	})
}
