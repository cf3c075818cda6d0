package explorer

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is the path under which the explorer's pages and files are
// served (the home page is also served at /).
const Prefix = "/explorer/"

// CSP is the Content-Security-Policy of every explorer response: scripts,
// styles and images only from the node itself (no inline script or
// style), connections only to the node (its JSON-RPC over HTTP and
// WebSocket), no plugins, frames, forms to elsewhere, or framing by
// another page.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the explorer in front of rpc, the JSON-RPC handler:
//
//   - GET or HEAD of / and of /explorer/… (not a WebSocket upgrade):
//     the explorer's page (index.html, which routes by path in the
//     browser) or, under /explorer/static/, its files; a missing file
//     is 404;
//   - GET or HEAD of any other path: 404;
//   - everything else (JSON-RPC POSTs, WebSocket upgrades, CORS
//     preflights): rpc, unchanged.
func Handler(rpc http.Handler) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			rpc.ServeHTTP(w, r)
			return
		}
		p := r.URL.Path
		if p != "/" && p != "/explorer" && !strings.HasPrefix(p, Prefix) {
			secure(w.Header())
			http.NotFound(w, r)
			return
		}
		secure(w.Header())
		if name, ok := strings.CutPrefix(p, Prefix+"static/"); ok {
			name = path.Clean("/" + name)[1:]
			if name == "" || name == "index.html" {
				http.NotFound(w, r)
				return
			}
			if _, err := fs.Stat(sub, name); err != nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			files.ServeHTTP(w, r2)
			return
		}
		page, err := fs.ReadFile(sub, "index.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		w.Write(page)
	})
}

// secure sets the headers of every explorer response.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}
