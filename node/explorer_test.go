package node

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common/hexutil"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/explorer"
)

// The explorer is served on the JSON-RPC port next to JSON-RPC, which
// answers as before; http.explorer = false turns it off.
func TestExplorerServed(t *testing.T) {
	get := func(t *testing.T, n *Node, method, path, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	rpcCall := `{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}`
	for _, on := range []bool{true, false} {
		n := startDevNode(t, t.TempDir(), func(c *Config) { c.HTTP.Explorer = on })
		resp, body := get(t, n, "POST", "/", rpcCall)
		if resp.StatusCode != 200 || body != `{"jsonrpc":"2.0","id":7,"result":"0x539"}` {
			t.Fatalf("explorer %v: JSON-RPC on /: %d %q", on, resp.StatusCode, body)
		}
		resp, body = get(t, n, "GET", "/", "")
		page := strings.Contains(body, "Tally explorer") && resp.Header.Get("Content-Security-Policy") == explorer.CSP
		if page != on || resp.StatusCode != 200 {
			t.Fatalf("explorer %v: GET / %d, explorer page %v: %.100q", on, resp.StatusCode, page, body)
		}
		// Off, every GET is go-ethereum's empty answer, as before.
		resp, body = get(t, n, "GET", "/explorer/static/app.js", "")
		if script := strings.Contains(body, "tally_decodeTransaction"); script != on || resp.StatusCode != 200 {
			t.Fatalf("explorer %v: app.js %d, script %v", on, resp.StatusCode, script)
		}
		// JSON-RPC over WebSocket on / is unchanged.
		ws, err := gethrpc.Dial("ws://" + n.HTTPAddr())
		if err != nil {
			t.Fatalf("explorer %v: WebSocket: %v", on, err)
		}
		var id hexutil.Uint64
		if err := ws.Call(&id, "eth_chainId"); err != nil || id != 1337 {
			t.Fatalf("explorer %v: eth_chainId over WebSocket: %v %v", on, id, err)
		}
		ws.Close()
		if resp, _ = get(t, n, "GET", "/healthz", ""); resp.StatusCode != 200 {
			t.Fatalf("healthz %d", resp.StatusCode)
		}
		if resp, body = get(t, n, "GET", "/metrics", ""); resp.StatusCode != 200 || !strings.Contains(body, "tally_") {
			t.Fatalf("metrics %d", resp.StatusCode)
		}
		n.Close()
	}
}
