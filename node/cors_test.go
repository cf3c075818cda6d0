package node

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// http.cors-origins: named origins anywhere, "*" only on a dev chain, and
// anything that is not an origin as a browser sends it is refused naming
// the key.
func TestCORSOriginsConfig(t *testing.T) {
	cases := []struct {
		name, toml string
		dev        bool
		want       string // "" accepted; otherwise part of the error
	}{
		{"named", `cors-origins = ["https://wallet.bank.example", "http://localhost:3000"]`, false, ""},
		{"empty", `cors-origins = []`, false, ""},
		{"any on a dev chain", `cors-origins = ["*"]`, true, ""},
		{"any outside dev", `cors-origins = ["https://a.example", "*"]`, false, `key http.cors-origins[1]: "*" (any web page may call this node) is only accepted with --dev`},
		{"a path", `cors-origins = ["https://a.example/app"]`, false, "http.cors-origins[0]"},
		{"a trailing slash", `cors-origins = ["https://a.example/"]`, false, `an origin has no path; write "https://a.example"`},
		{"no scheme", `cors-origins = ["a.example"]`, false, "http.cors-origins[0]"},
		{"a wildcard", `cors-origins = ["https://*.example"]`, true, "http.cors-origins[0]"},
		{"null", `cors-origins = ["null"]`, true, "http.cors-origins[0]"},
		{"a query", `cors-origins = ["https://a.example?x=1"]`, false, "http.cors-origins[0]"},
		{"credentials", `cors-origins = ["https://u:p@a.example"]`, false, "http.cors-origins[0]"},
		{"not a list", `cors-origins = "https://a.example"`, false, "http.cors-origins"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			os.WriteFile(path, []byte(fmt.Sprintf("dev = %v\n[http]\n%s\n", c.dev, c.toml)), 0o600)
			_, err := LoadConfig(path)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}

	cfg := DefaultConfig()
	if got := cfg.HTTP.Limits(false).CORSOrigins; len(got) != 0 {
		t.Fatalf("default cors-origins outside dev: %v, want none", got)
	}
	if got := cfg.HTTP.Limits(true).CORSOrigins; !reflect.DeepEqual(got, []string{"*"}) {
		t.Fatalf("default cors-origins on a dev chain: %v, want [*]", got)
	}
	cfg.HTTP.CORSOrigins = []string{}
	if got := cfg.HTTP.Limits(true).CORSOrigins; len(got) != 0 {
		t.Fatalf("cors-origins = [] on a dev chain: %v, want none", got)
	}
}

// A dev node answers a dApp on http://localhost:3000 (make run), and a
// node with named origins answers only those.
func TestCORSDevNode(t *testing.T) {
	preflight := func(n *Node, origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, "http://"+n.HTTPAddr(), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight from %s: status %d, want 204", origin, resp.StatusCode)
		}
		return resp.Header
	}
	dev := startDevNode(t, t.TempDir())
	if h := preflight(dev, "http://localhost:3000"); h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Fatalf("dev node preflight headers %v", h)
	}
	named := startDevNode(t, t.TempDir(), func(c *Config) { c.HTTP.CORSOrigins = []string{"https://wallet.bank.example"} })
	if h := preflight(named, "https://wallet.bank.example"); h.Get("Access-Control-Allow-Origin") != "https://wallet.bank.example" {
		t.Fatalf("named origin: %v", h)
	}
	if h := preflight(named, "http://localhost:3000"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("origin not named: %v", h)
	}
}
