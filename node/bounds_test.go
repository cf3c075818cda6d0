package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// The reproduction: 2,000 connections trickling request bodies
// from one address. The node holds at most http.max-connections-per-ip
// of them (each is cut off after http.read-timeout), so its stores keep
// their file descriptors, and a wallet on another address is served and
// its transfer is committed and applied meanwhile.
func TestNodeSurvivesSlowConnectionFlood(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	perIP := n.cfg.HTTP.MaxConnectionsPerIP
	base := openFDs(t)
	const flood = 2000
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := d.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[")
	}
	// The client's own 2,000 descriptors are in this process too; the
	// node's side may hold perIP of them (and a few for its stores).
	deadline := time.Now().Add(20 * time.Second)
	for {
		held := openFDs(t) - base - flood
		if held <= perIP+32 {
			t.Logf("node holds %d descriptors for %d slow connections (max-connections-per-ip %d)", held, flood, perIP)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node holds %d descriptors for %d slow connections, want at most %d", held, flood, perIP+32)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Operators see it: the refusals are counted in the node's metrics.
	resp, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var refused float64
	for _, line := range strings.Split(string(metrics), "\n") {
		if v, ok := strings.CutPrefix(line, `tally_rpc_refused_total{bound="http.max-connections-per-ip"} `); ok {
			refused, _ = strconv.ParseFloat(v, 64)
		}
	}
	if refused < float64(flood-perIP) {
		t.Fatalf("tally_rpc_refused_total{bound=\"http.max-connections-per-ip\"} is %v, want at least %d", refused, flood-perIP)
	}

	ec, _ := dial(t, n)
	ctx := context.Background()
	id := big.NewInt(genesis.DevChainID)
	key, _ := genesis.DevKey(3)
	to := common.Address{0x77}
	tx, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
	if err := ec.SendTransaction(ctx, tx); err != nil {
		t.Fatalf("a wallet during the flood: %v", err)
	}
	if r := waitReceipt(t, ec, tx.Hash()); r.Status != 1 {
		t.Fatalf("receipt %+v", r)
	}
}

// ws-origins is "*" only on a dev chain when unset: a production node
// lets browsers open a WebSocket from localhost alone unless configured.
func TestWSOriginsDefault(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.HTTP.Limits(false).WSOrigins; len(got) != 0 {
		t.Fatalf("default ws-origins outside dev: %v, want none (localhost only)", got)
	}
	if got := cfg.HTTP.Limits(true).WSOrigins; !reflect.DeepEqual(got, []string{"*"}) {
		t.Fatalf("default ws-origins on a dev chain: %v, want [*]", got)
	}
	cfg.HTTP.WSOrigins = []string{"https://wallet.example"}
	if got := cfg.HTTP.Limits(true).WSOrigins; !reflect.DeepEqual(got, []string{"https://wallet.example"}) {
		t.Fatalf("configured ws-origins on a dev chain: %v", got)
	}

	// A real dev node lets a browser page from anywhere connect.
	n := startDevNode(t, t.TempDir())
	ws, err := gethrpc.DialWebsocket(context.Background(), "ws://"+n.HTTPAddr(), "https://dapp.example")
	if err != nil {
		t.Fatalf("dev node, foreign origin: %v", err)
	}
	ws.Close()
	// And a node configured like production does not.
	strict := startDevNode(t, t.TempDir(), func(c *Config) { c.HTTP.WSOrigins = []string{"https://wallet.example"} })
	if _, err := gethrpc.DialWebsocket(context.Background(), "ws://"+strict.HTTPAddr(), "https://dapp.example"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("configured origins, foreign origin: %v, want HTTP 403", err)
	}
}

// A transaction a follower forwarded and the leader refused leaves no
// sender in the leader's cache; one it admitted does.
func TestForwardedRefusalNotCached(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0x78}
	stranger, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := genesis.DevKey(4)
	refused, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: big.NewInt(1), Gas: 21000}), id, stranger)
	admitted, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
	for _, c := range []struct {
		tx     *types.Transaction
		ok     bool
		cached bool
	}{{refused, false, false}, {admitted, true, true}} {
		raw, _ := c.tx.MarshalBinary()
		if err := n.admitForwarded(raw); (err == nil) != c.ok {
			t.Fatalf("admitForwarded: %v, want ok %v", err, c.ok)
		}
		if got := n.senders.Contains(c.tx.Hash()); got != c.cached {
			if c.cached {
				if _, _, pending := n.pool.Get(c.tx.Hash()); !pending {
					continue // applied meanwhile: nothing to keep the sender for
				}
			}
			t.Fatalf("sender of %s cached %v, want %v", c.tx.Hash(), got, c.cached)
		}
	}
}

// The admin listener holds at most admin.max-connections connections: once
// that many are held, every further connection (a slowloris flood on the
// management network) is answered HTTP 503 with -32005 as it arrives, the
// JSON-RPC port serves wallets meanwhile, a slow-body connection that gets
// a slot is cut off after http.read-timeout, and the operator's admin calls
// are served again once the held connections are gone.
//
// The held connections are idle keep-alive ones, which the node keeps until
// http.idle-timeout (ten minutes here), not slow-body ones cut off after
// the read timeout: a slot freed by the read timeout during the flood is
// rightly given to a later connection, so a flood that the machine's load
// stretched past the read timeout (300 ms) was once counted one refusal
// short ("83 of 100 refused, wanted 84").
func TestAdminConnectionCap(t *testing.T) {
	n := startDevNode(t, t.TempDir(), func(c *Config) {
		c.Admin.Port = freePort(t)
		c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout = Duration(300*time.Millisecond), Duration(300*time.Millisecond)
		c.HTTP.IdleTimeout = Duration(10 * time.Minute)
	})
	max := n.cfg.Admin.MaxConnections
	addr := n.admin.ln.Addr().String()
	const flood = 100
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect := func() net.Conn {
		t.Helper()
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	// read reads one response; a timeout fails the test.
	read := func(c net.Conn, what string) (*http.Response, string, error) {
		t.Helper()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s neither answered nor closed within 10 s", what)
		}
		if err != nil {
			return nil, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body), nil
	}
	const slowBody = "POST / HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\":"
	// max connections each make one whole (unauthorized) call and stay
	// open: answered, so each holds a slot.
	for i := range max {
		c := connect()
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
		if resp, body, err := read(c, fmt.Sprintf("held admin connection %d", i)); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("held admin connection %d: %v %v %s, want HTTP 401", i, resp, err, body)
		}
	}
	// Every connection of the flood is refused at once.
	for i := max; i < flood; i++ {
		c := connect()
		fmt.Fprint(c, slowBody)
		resp, body, err := read(c, fmt.Sprintf("slow admin connection %d", i))
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("slow admin connection %d beyond admin.max-connections %d: %v %v %s, want HTTP 503", i, max, resp, err, body)
		}
		want := fmt.Sprintf("too many connections: the node serves at most %d (admin.max-connections)", max)
		if !strings.Contains(body, `"code":-32005`) || !strings.Contains(body, want) {
			t.Fatalf("refusal %s, want -32005 %q", body, want)
		}
	}
	// A wallet on the JSON-RPC port is served during the flood.
	ec, _ := dial(t, n)
	if _, err := ec.BlockNumber(context.Background()); err != nil {
		t.Fatalf("a wallet during the admin flood: %v", err)
	}
	// The held connections go; a slow-body connection then gets a slot
	// (once the node has seen a close) and is cut off after the read
	// timeout.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	for deadline := time.Now().Add(10 * time.Second); ; {
		c := connect()
		fmt.Fprint(c, slowBody)
		resp, body, err := read(c, "a slow admin connection after the flood")
		if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
			if time.Now().After(deadline) {
				t.Fatalf("no admin slot freed 10 s after the held connections closed: %s", body)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err == nil && resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a slow admin connection after the flood: HTTP %d %s, want 401 or a cut-off", resp.StatusCode, body)
		}
		// Answered 401 at the headers (or cut off already): the node must
		// close it once the read timeout has passed.
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a slow admin connection sent more after its answer")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a slow admin connection was not cut off within 10 s (http.read-timeout 300ms)")
		}
		break
	}
	token, err := os.ReadFile(filepath.Join(n.cfg.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := gethrpc.DialOptions(t.Context(), "http://"+addr, gethrpc.WithHeaders(http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(token))}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// The node frees a closed connection's slot when it sees the close, so
	// a refusal may still come while it catches up; any other error fails.
	var st RaftStatus
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := rc.Call(&st, "admin_raftStatus")
		if err == nil {
			break
		}
		var he gethrpc.HTTPError
		if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("the operator after the flood: %v", err)
		}
	}
}
