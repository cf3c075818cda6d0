package explorer

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// rpcStub stands for the JSON-RPC handler: it answers every request it
// gets with a marker, so a test sees which requests reach it.
const rpcMarker = `{"jsonrpc":"2.0","id":1,"result":"from rpc"}`

func serve(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	calls := new(int)
	rpc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*calls++
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, rpcMarker)
	})
	s := httptest.NewServer(Handler(rpc))
	t.Cleanup(s.Close)
	return s, calls
}

func do(t *testing.T, s *httptest.Server, method, path string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestRoutes(t *testing.T) {
	s, calls := serve(t)
	for _, c := range []struct {
		method, path string
		header       map[string]string
		status       int
		ctype        string
		contains     string
		rpc          bool
	}{
		{"GET", "/", nil, 200, "text/html; charset=utf-8", `<script type="module" src="/explorer/static/app.js">`, false},
		{"GET", "/explorer", nil, 200, "text/html; charset=utf-8", "Tally explorer", false},
		{"GET", "/explorer/", nil, 200, "text/html; charset=utf-8", "Tally explorer", false},
		{"GET", "/explorer/tx/0x" + strings.Repeat("ab", 32), nil, 200, "text/html; charset=utf-8", "Tally explorer", false},
		{"GET", "/explorer/search?q=%3Cscript%3E", nil, 200, "text/html; charset=utf-8", "Tally explorer", false},
		{"HEAD", "/", nil, 200, "text/html; charset=utf-8", "", false},
		{"GET", "/explorer/static/app.js", nil, 200, "text/javascript; charset=utf-8", "tally_decodeTransaction", false},
		{"GET", "/explorer/static/rpc.js", nil, 200, "text/javascript; charset=utf-8", "jsonrpc", false},
		{"GET", "/explorer/static/style.css", nil, 200, "text/css; charset=utf-8", "font", false},
		{"GET", "/explorer/static/missing.js", nil, 404, "text/plain; charset=utf-8", "404", false},
		{"GET", "/explorer/static/", nil, 404, "text/plain; charset=utf-8", "404", false},
		{"GET", "/explorer/static/index.html", nil, 404, "text/plain; charset=utf-8", "404", false},
		{"GET", "/explorer/static/../../go.mod", nil, 404, "text/plain; charset=utf-8", "404", false},
		{"GET", "/favicon.ico", nil, 404, "text/plain; charset=utf-8", "404", false},
		{"GET", "/nowhere", nil, 404, "text/plain; charset=utf-8", "404", false},
		// What the JSON-RPC handler serves reaches it unchanged.
		{"POST", "/", map[string]string{"Content-Type": "application/json"}, 200, "application/json", rpcMarker, true},
		{"POST", "/explorer/", map[string]string{"Content-Type": "application/json"}, 200, "application/json", rpcMarker, true},
		{"GET", "/", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}, 200, "application/json", rpcMarker, true},
		{"OPTIONS", "/", map[string]string{"Origin": "http://x.example", "Access-Control-Request-Method": "POST"}, 200, "application/json", rpcMarker, true},
	} {
		before := *calls
		resp, body := do(t, s, c.method, c.path, c.header, "")
		what := c.method + " " + c.path
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %q %.80q, want %d %q containing %q", what, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.ctype, c.contains)
		}
		if reached := *calls > before; reached != c.rpc {
			t.Errorf("%s: reached the JSON-RPC handler: %v, want %v", what, reached, c.rpc)
		}
		if c.rpc {
			if resp.Header.Get("Content-Security-Policy") != "" {
				t.Errorf("%s: a JSON-RPC reply got the explorer's headers", what)
			}
			continue
		}
		if resp.Header.Get("Content-Security-Policy") != CSP || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", what, resp.Header)
		}
		if c.method == "HEAD" && body != "" {
			t.Errorf("%s: a body", what)
		}
	}
}

// The CSP allows no inline script or style and nothing from elsewhere;
// the pages have no inline script, inline handler or style attribute for
// it to block, load nothing from another origin, and the scripts never
// parse text as HTML.
func TestNoInlineOrForeignContent(t *testing.T) {
	for _, directive := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(CSP, directive+";") && !strings.HasSuffix(CSP, directive) {
			t.Errorf("CSP lacks %q: %s", directive, CSP)
		}
	}
	if strings.Contains(CSP, "unsafe") || strings.Contains(CSP, "http") || strings.Contains(CSP, "*") {
		t.Errorf("CSP allows too much: %s", CSP)
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`\son[a-z]+\s*=`), regexp.MustCompile(`\sstyle\s*=`), regexp.MustCompile(`(?i)(src|href)="(https?:)?//`),
	} {
		checkFiles(t, "*.html", bad)
	}
	// Every script is a file: a script tag has a src and nothing inside.
	page, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	tags := regexp.MustCompile(`<script([^>]*)>([^<]*)</script>`).FindAllSubmatch(page, -1)
	if len(tags) == 0 || len(tags) != strings.Count(string(page), "<script") {
		t.Fatalf("%d script tags with an end tag, %d opened", len(tags), strings.Count(string(page), "<script"))
	}
	for _, tag := range tags {
		if !strings.Contains(string(tag[1]), ` src="/explorer/static/`) || len(tag[2]) != 0 {
			t.Errorf("inline script %q", tag[0])
		}
	}
	for _, bad := range []string{`innerHTML`, `outerHTML`, `insertAdjacentHTML`, `document.write`, `eval(`, `new Function`, `http://`, `https://`, `import(`} {
		checkFiles(t, "*.js", regexp.MustCompile(regexp.QuoteMeta(bad)))
	}
	checkFiles(t, "*.css", regexp.MustCompile(`@import|url\(`))
}

func checkFiles(t *testing.T, pattern string, bad *regexp.Regexp) {
	t.Helper()
	names, err := fs.Glob(static, "static/"+pattern)
	if err != nil || len(names) == 0 {
		t.Fatalf("no %s files: %v", pattern, err)
	}
	for _, name := range names {
		b, err := static.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := bad.Find(b); m != nil {
			t.Errorf("%s has %q", name, m)
		}
	}
}
