package rpc

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCORS answers what a browser sends (the Fetch standard's CORS
// protocol): a preflight for a JSON POST (OPTIONS with Origin,
// Access-Control-Request-Method and -Headers: content-type), then the POST
// itself. Only an allowed origin's page gets Access-Control-Allow-Origin,
// on the preflight, the reply and an error reply alike; a client that is
// not a browser sends no Origin and is served as before.
func TestCORS(t *testing.T) {
	c := newFilterChain(t)
	serve := func(origins []string) string {
		limits := DefaultLimits
		limits.CORSOrigins = origins
		limits.MaxBodyBytes = 4096
		srv, err := NewServer(c, limits, "test")
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		t.Cleanup(func() { ts.Close(); srv.Stop() })
		return ts.URL
	}
	named := serve([]string{"https://dapp.example", "http://localhost:3000"})
	anyOrigin := serve([]string{"*"})
	none := serve(nil)
	const chainID = `{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}`

	type want struct {
		status  int
		acao    string // "" means the header must be absent
		preflit bool   // check Allow-Methods, Allow-Headers, Max-Age
		body    string // a substring of the reply body
	}
	cases := []struct {
		name, url, method, origin, body string
		headers                         map[string]string
		want                            want
	}{
		{"preflight, allowed origin", named, http.MethodOptions, "http://localhost:3000", "",
			map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
			want{status: http.StatusNoContent, acao: "http://localhost:3000", preflit: true}},
		{"preflight, other allowed origin, header case as sent", named, http.MethodOptions, "https://dapp.example", "",
			map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-api-key"},
			want{status: http.StatusNoContent, acao: "https://dapp.example", preflit: true}},
		{"preflight, origin not allowed", named, http.MethodOptions, "https://evil.example", "",
			map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
			want{status: http.StatusNoContent}},
		{"preflight, a prefix of an allowed origin", named, http.MethodOptions, "https://dapp.example.evil.example", "",
			map[string]string{"Access-Control-Request-Method": "POST"},
			want{status: http.StatusNoContent}},
		{"preflight, any origin allowed", anyOrigin, http.MethodOptions, "https://anything.example", "",
			map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
			want{status: http.StatusNoContent, acao: "*", preflit: true}},
		{"preflight, CORS off", none, http.MethodOptions, "http://localhost:3000", "",
			map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
			want{status: http.StatusOK}},
		{"POST, allowed origin", named, http.MethodPost, "http://localhost:3000", chainID, nil,
			want{status: http.StatusOK, acao: "http://localhost:3000", body: `"result":"0x539"`}},
		{"POST, origin not allowed: served, but the browser hides the reply", named, http.MethodPost, "https://evil.example", chainID, nil,
			want{status: http.StatusOK, body: `"result":"0x539"`}},
		{"POST, no origin (not a browser)", named, http.MethodPost, "", chainID, nil,
			want{status: http.StatusOK, body: `"result":"0x539"`}},
		{"POST, any origin allowed", anyOrigin, http.MethodPost, "https://anything.example", chainID, nil,
			want{status: http.StatusOK, acao: "*", body: `"result":"0x539"`}},
		{"POST, CORS off", none, http.MethodPost, "http://localhost:3000", chainID, nil,
			want{status: http.StatusOK, body: `"result":"0x539"`}},
		{"POST over the body limit: the page can read the error", named, http.MethodPost, "http://localhost:3000",
			`{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["` + strings.Repeat("a", 5000) + `"]}`, nil,
			want{status: http.StatusRequestEntityTooLarge, acao: "http://localhost:3000", body: "request body too large"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.method == http.MethodPost {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != tc.want.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.want.status, body)
			}
			if got := h.Values("Access-Control-Allow-Origin"); tc.want.acao == "" && len(got) != 0 ||
				tc.want.acao != "" && (len(got) != 1 || got[0] != tc.want.acao) {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tc.want.acao)
			}
			if !strings.Contains(string(body), tc.want.body) {
				t.Fatalf("body %s, want it to contain %s", body, tc.want.body)
			}
			if tc.want.acao != "" && !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") && tc.want.acao != "*" {
				t.Fatalf("Vary %q: a reply that depends on Origin must say so to caches", h.Values("Vary"))
			}
			if !tc.want.preflit {
				return
			}
			if m := h.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
				t.Fatalf("Access-Control-Allow-Methods %q, want POST", m)
			}
			allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
			for _, r := range strings.Split(tc.headers["Access-Control-Request-Headers"], ",") {
				if !strings.Contains(allowed, strings.TrimSpace(r)) {
					t.Fatalf("Access-Control-Allow-Headers %q lacks the requested %q", allowed, r)
				}
			}
			if ma := h.Get("Access-Control-Max-Age"); ma != "600" {
				t.Fatalf("Access-Control-Max-Age %q, want 600", ma)
			}
		})
	}
}

// A page of an allowed origin on the public internet may call a node on a
// private network (Chrome's Private Network Access preflight); the
// operator named that origin. Another origin gets no such permission.
func TestCORSPrivateNetwork(t *testing.T) {
	c := newFilterChain(t)
	limits := DefaultLimits
	limits.CORSOrigins = []string{"https://wallet.bank.example"}
	srv, err := NewServer(c, limits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() { ts.Close(); srv.Stop() }()
	for origin, want := range map[string]string{"https://wallet.bank.example": "true", "https://evil.example": ""} {
		req, _ := http.NewRequest(http.MethodOptions, ts.URL, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Private-Network", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Private-Network"); got != want {
			t.Fatalf("%s: Access-Control-Allow-Private-Network %q, want %q", origin, got, want)
		}
	}
}
