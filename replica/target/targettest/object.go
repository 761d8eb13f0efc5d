package targettest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/asr-project/asr/replica/target"
)

// okey returns an object key under this subtest's own prefix.
func (e *env) okey(s string) string { return e.tag + "/" + s }

func putObject(t *testing.T, e *env, key string, data []byte) {
	t.Helper()
	if err := e.PutObject(e.ctx, key, data); err != nil {
		t.Fatalf("PutObject(%s): %v", key, err)
	}
	t.Cleanup(func() { _ = e.DeleteObject(context.Background(), key) })
}

func getObject(t *testing.T, e *env, key string, want []byte) {
	t.Helper()
	got, err := e.GetObject(e.ctx, key)
	if err != nil {
		t.Fatalf("GetObject(%s): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("GetObject(%s) = %q, want %q", key, got, want)
	}
}

func testObjects(t *testing.T, e *env) {
	k := e.okey("manifest.json")
	if _, err := e.GetObject(e.ctx, k); !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("GetObject of a missing object: error %v, want ErrNotFound", err)
	}
	putObject(t, e, k, []byte(`{"v":1}`))
	getObject(t, e, k, []byte(`{"v":1}`))
	putObject(t, e, k, []byte(`{"v":2,"longer":true}`)) // overwrite, longer
	getObject(t, e, k, []byte(`{"v":2,"longer":true}`))
	putObject(t, e, k, []byte(`{}`)) // overwrite, shorter
	getObject(t, e, k, []byte(`{}`))

	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	kb := e.okey("deep/er/map.bin")
	putObject(t, e, kb, big)
	getObject(t, e, kb, big)
	ke := e.okey("empty")
	putObject(t, e, ke, nil)
	getObject(t, e, ke, nil)

	for _, key := range []string{k, kb, ke} {
		if err := e.DeleteObject(e.ctx, key); err != nil {
			t.Fatalf("DeleteObject(%s): %v", key, err)
		}
		if _, err := e.GetObject(e.ctx, key); !errors.Is(err, target.ErrNotFound) {
			t.Fatalf("GetObject after DeleteObject(%s): error %v, want ErrNotFound", key, err)
		}
	}
	if err := e.DeleteObject(e.ctx, k); err != nil {
		t.Fatalf("DeleteObject of a missing object: %v", err)
	}
	keys, err := e.ListObjects(e.ctx, e.okey(""))
	if err != nil {
		t.Fatalf("ListObjects: %v", err)
	}
	checkList(t, "ListObjects after deleting all", keys, nil)
}

func testObjectsList(t *testing.T, e *env) {
	// Put out of order; "points/10" sorts before "points/9" as strings.
	names := []string{"points/9", "points/10", "manifest", "points/1/a", "pointsx", "b/c"}
	for _, n := range names {
		putObject(t, e, e.okey(n), []byte(n))
	}
	list := func(prefix string, want ...string) {
		t.Helper()
		got, err := e.ListObjects(e.ctx, e.okey(prefix))
		if err != nil {
			t.Fatalf("ListObjects(%s): %v", e.okey(prefix), err)
		}
		for i := range want {
			want[i] = e.okey(want[i])
		}
		checkList(t, "ListObjects("+prefix+")", got, want)
	}
	list("", "b/c", "manifest", "points/1/a", "points/10", "points/9", "pointsx")
	list("points/", "points/1/a", "points/10", "points/9")
	list("points", "points/1/a", "points/10", "points/9", "pointsx")
	list("points/1", "points/1/a", "points/10")
	list("man", "manifest")
	list("nothing")
	getObject(t, e, e.okey("points/1/a"), []byte("points/1/a"))
}
