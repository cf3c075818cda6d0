package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/tally-ledger/tally/bankcore"
	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// The bridge end-to-end test: a 3-node testnet, `tally bankcore-sim` and
// `tally bridge` (bank B, HKD) as real processes, with faults; at the end
// `tally audit` passes on the chain the bridge wrote, its supply table is
// tally_getSupply's, and a mint and a payout settlement are proven offline.

const (
	brHKD      = 1 // HKD's asset id in the dev/testnet genesis
	brWallets  = 20
	brDeposits = 200
	brSettled  = 50
	brRejected = 5
)

// buildTally builds cmd/tally once per test binary run.
func buildTally(t *testing.T) string {
	t.Helper()
	bin, err := wallettest.BuildCommand("tally")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// proc is one `tally` process (bridge or simulator).
type proc struct {
	t    *testing.T
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(t *testing.T, name, logPath string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, log: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(buildTally(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("tail of %s log %s:\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) kill() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.t.Logf("%s pid %d killed (SIGKILL)", p.name, p.cmd.Process.Pid)
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, p *proc, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, tail(p.log, 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not answer 200 within 30s: %v", p.name, url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pollUntil polls cond every 50 ms until it holds, failing after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bankSide is the issuing bank and the asset a bridge serves, and how its
// simulator behaves.
type bankSide struct {
	keyIndex uint32 // the bank's dev key (genesis.DevBankAIndex, …)
	asset    uint32 // the asset's id in the dev genesis
	symbol   string
	omnibus  string // the bank's omnibus account (bankcore.debtor-account)
	simExtra string // appended to sim.toml: [reject], [random], …
}

// bankBHKD is bank B bridging HKD, its payouts above 900 rejected.
var bankBHKD = bankSide{keyIndex: genesis.DevBankBIndex, asset: brHKD, symbol: "HKD", omnibus: "SIM-OMNIBUS-0001",
	simExtra: "[reject]\nabove = \"900\"\nreason = \"AC04 account closed\"\n"}

type bridgeEnv struct {
	t         *testing.T
	side      bankSide
	name      string // the bridge instance's name: its config and log files
	ctx       context.Context
	c         *testCluster
	dir       string
	secret    []byte
	bank      *crypto.PrivateKey
	cfgPath   string
	simCfg    string
	bridgeURL string
	simURL    string
	bridge    *proc
	sim       *proc
	runs      int
	readFrom  int // the node the test reads the chain from
}

func (e *bridgeEnv) startBridge() {
	e.t.Helper()
	e.runs++
	e.bridge = startProc(e.t, fmt.Sprintf("%s run %d", e.name, e.runs), filepath.Join(e.dir, fmt.Sprintf("%s.run%d.log", e.name, e.runs)), "bridge", "--config", e.cfgPath)
	waitHTTP(e.t, e.bridge, e.bridgeURL+"/healthz")
}

// post signs body with the shared secret and POSTs it.
func (e *bridgeEnv) post(url string, body []byte) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(bridge.SignatureHeader, bridge.Sign(e.secret, body, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (e *bridgeEnv) getJSON(url string, v any) {
	e.t.Helper()
	resp, err := operatorGet(url)
	if err != nil {
		e.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", url, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, v); err != nil {
		e.t.Fatalf("GET %s: %v: %s", url, err, data)
	}
}

func (e *bridgeEnv) faults(body string) {
	e.t.Helper()
	if code, out := e.post(e.simURL+bankcore.PathFaults, []byte(body)); code != http.StatusOK {
		e.t.Fatalf("POST /sim/faults %s: %d %s", body, code, out)
	}
}

type depReq struct {
	Account   string `json:"account"`
	Amount    string `json:"amount"`
	Reference string `json:"reference"`
}

func (e *bridgeEnv) deposit(reqs []depReq) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"deposits": reqs})
	if code, out := e.post(e.simURL+bankcore.PathDeposits, body); code/100 != 2 {
		e.t.Fatalf("POST /sim/deposits: %d %s", code, out)
	}
}

// liveNode returns a client of the node the test reads from (one that
// stayed up, so it never lags behind what the test saw before).
func (e *bridgeEnv) liveNode() *ethclient.Client {
	if e.c.down[e.readFrom] {
		e.t.Fatalf("node %d, read from, is down", e.readFrom)
	}
	return ethclient.NewClient(e.c.rpcs[e.readFrom])
}

// logs reads the asset facade's logs of event with the given topics, in
// block ranges small enough for any node limit.
func (e *bridgeEnv) logs(event string, topics ...[]common.Hash) []types.Log {
	e.t.Helper()
	ec := e.liveNode()
	head, err := ec.BlockNumber(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []types.Log
	for lo := uint64(0); lo <= head; lo += 500 {
		q := ethereum.FilterQuery{FromBlock: bigU(lo), ToBlock: bigU(min(head, lo+499)), Addresses: []common.Address{chain.AssetAddress(e.side.asset)},
			Topics: append([][]common.Hash{{chain.AssetABI.Events[event].ID}}, topics...)}
		ls, err := ec.FilterLogs(e.ctx, q)
		if err != nil {
			e.t.Fatalf("eth_getLogs %s: %v", event, err)
		}
		out = append(out, ls...)
	}
	return out
}

func (e *bridgeEnv) bankTopic() common.Hash { return common.BytesToHash(e.bank.Address().Bytes()) }

// mintedRefs counts Minted logs by the bank per bankRef.
func (e *bridgeEnv) mintedRefs() map[common.Hash]int {
	out := map[common.Hash]int{}
	for _, l := range e.logs("Minted", nil, []common.Hash{e.bankTopic()}) {
		out[l.Topics[1]]++
	}
	return out
}

type bridgeStatus struct {
	Deposits  map[string]uint64 `json:"deposits"`
	Payouts   map[string]uint64 `json:"payouts"`
	LastError *struct {
		Worker, Message string
	} `json:"lastError"`
}

func (e *bridgeEnv) status() bridgeStatus {
	var s bridgeStatus
	e.getJSON(e.bridgeURL+bridge.PathStatus, &s)
	return s
}

type simLedger struct {
	Balances map[string]string `json:"balances"`
	Entries  []struct {
		Ref        string    `json:"ref"`
		Credit     bool      `json:"credit"`
		Amount     string    `json:"amount"`
		Account    string    `json:"account"`
		EndToEndID string    `json:"endToEndId"`
		MsgID      string    `json:"msgId"`
		Return     string    `json:"return"`
		Reversal   bool      `json:"reversal"`
		BookedAt   time.Time `json:"bookedAt"`
	} `json:"entries"`
	Orders []struct {
		MsgID      string `json:"msgId"`
		EndToEndID string `json:"endToEndId"`
		Account    string `json:"account"`
		Amount     string `json:"amount"`
		Status     string `json:"status"`
		Reason     string `json:"reason"`
		Returned   bool   `json:"returned"`
		Sends      int    `json:"sends"` // messages that carried the order
	} `json:"orders"`
}

// depositBankRef is the bankRef the bridge mints the simulator's deposit
// ref under: its key is the omnibus account, the reference and the day
// the simulator booked it (bridge.DepositKey).
func (e *bridgeEnv) depositBankRef(bank common.Address, ref string) common.Hash {
	e.t.Helper()
	for _, en := range e.ledger().Entries {
		if en.Credit && en.Ref == ref {
			key := bridge.DepositKey{Account: e.side.omnibus, Ref: ref, BookingDate: en.BookedAt.UTC().Format(time.DateOnly)}
			return key.BankRef(bank, e.side.symbol)
		}
	}
	e.t.Fatalf("the simulator has booked no deposit %s", ref)
	return common.Hash{}
}

func (e *bridgeEnv) ledger() simLedger {
	var l simLedger
	e.getJSON(e.simURL+bankcore.PathLedger, &l)
	return l
}

// metric sums the samples of a bridge metric whose label set contains
// every one of labels (`verdict="duplicate"`).
func (e *bridgeEnv) metric(name string, labels ...string) float64 {
	e.t.Helper()
	resp, err := operatorGet(e.bridgeURL + "/metrics")
	if err != nil {
		e.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// e2eOperatorToken is the bridge operator's token: /v1/status and
// /metrics need one (operator.tokens-file).
const e2eOperatorToken = "e2e-operator-token-0123456789abcdef"

// operatorGet is a GET with the operator's token (the simulator ignores it).
func operatorGet(url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+e2eOperatorToken)
	return http.DefaultClient.Do(req)
}

func cents(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

func account(i int) string { return fmt.Sprintf("HK-E2E-%02d", i) }

// setupBridge is setupBank for bank B bridging HKD (bankBHKD).
func setupBridge(t *testing.T, ctx context.Context, c *testCluster, secret string, wallets int, name func(int) string) (*bridgeEnv, *crypto.PrivateKey, []*crypto.PrivateKey, *wallet.Supply) {
	t.Helper()
	return setupBank(t, ctx, c, bankBHKD, secret, wallets, name)
}

// setupBank writes the bank's keystore, the HMAC secrets, bridge.toml
// (every node of c as an endpoint) and sim.toml (with side.simExtra),
// records the asset's supply before the bridge runs, starts the bridge
// and the simulator, and links dev wallets 0..wallets-1 to the accounts
// name(i).
func setupBank(t *testing.T, ctx context.Context, c *testCluster, side bankSide, secret string, wallets int, name func(int) string) (*bridgeEnv, *crypto.PrivateKey, []*crypto.PrivateKey, *wallet.Supply) {
	t.Helper()
	e := &bridgeEnv{t: t, side: side, name: "bridge", ctx: ctx, c: c, dir: t.TempDir(), secret: []byte(secret)}
	bank, err := genesis.DevKey(side.keyIndex)
	if err != nil {
		t.Fatal(err)
	}
	e.bank = bank
	ks, err := crypto.EncryptKey(bank, "bank password", crypto.LightScryptN, crypto.LightScryptP)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"bank.json": ks, "bank.pass": []byte("bank password\n"), "hmac.secret": e.secret,
		"order.secret": append([]byte("orders-"), e.secret...), "operators": []byte("e2e " + e2eOperatorToken + "\n")} {
		if err := os.WriteFile(filepath.Join(e.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	simListen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	e.simURL = "http://" + simListen
	e.writeBridgeConfig("bridge-data")
	scfg := fmt.Sprintf(`listen = %q
bridge-url = %q
secret-file = "hmac.secret"
order-secret-file = "order.secret"
currency = %q
omnibus-account = %q
status-delay = "50ms"
retry-interval = "200ms"
%s`, simListen, e.bridgeURL, side.symbol, side.omnibus, side.simExtra)
	e.simCfg = filepath.Join(e.dir, "sim.toml")
	if err := os.WriteFile(e.simCfg, []byte(scfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// Supply before anything the bridge does.
	wc, err := wallet.Dial(ctx, c.specs[0].RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	sup0, err := wc.Supply(ctx, side.symbol)
	if err != nil {
		t.Fatal(err)
	}

	e.startBridge()
	e.sim = startProc(t, "bankcore-sim", filepath.Join(e.dir, "sim.log"), "bankcore-sim", "--config", e.simCfg)
	waitHTTP(t, e.sim, e.simURL+bankcore.PathLedger)

	keys := clusterDevKeys(t, 0, wallets)
	e.link(keys, name)
	return e, bank, keys, sup0
}

// writeBridgeConfig writes the bridge's config file (e.name.toml, its
// store in datadir) with a free listen port, for the bank's simulator.
func (e *bridgeEnv) writeBridgeConfig(datadir string) {
	e.t.Helper()
	bridgeListen := "127.0.0.1:" + strconv.Itoa(freePort(e.t))
	e.bridgeURL = "http://" + bridgeListen
	var eps []string
	for _, s := range e.c.specs {
		eps = append(eps, strconv.Quote(s.RPC))
	}
	bcfg := fmt.Sprintf(`listen = %q
datadir = %q
asset = %q
[key]
keystore-file = "bank.json"
password-file = "bank.pass"
[nodes]
endpoints = [%s]
timeout = "3s"
[bankcore]
url = %q
debtor-account = %q
timeout = "3s"
[auth]
intake-secret-file = "hmac.secret"
order-secret-file = "order.secret"
[operator]
tokens-file = "operators"
[outbox]
poll-interval = "50ms"
receipt-timeout = "5s"
[follower]
poll-interval = "200ms"
max-range = 500
[payout]
poll-interval = "100ms"
retry-min = "200ms"
retry-max = "1s"
[closer]
poll-interval = "100ms"
`, bridgeListen, datadir, e.side.symbol, strings.Join(eps, ", "), e.simURL, e.side.omnibus)
	e.cfgPath = filepath.Join(e.dir, e.name+".toml")
	if err := os.WriteFile(e.cfgPath, []byte(bcfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// addInstance starts a second bridge instance of e's bank (same key,
// secrets and simulator; its own store and listen address) and links
// the same wallets there. The simulator keeps posting to e.
func (e *bridgeEnv) addInstance(name string, keys []*crypto.PrivateKey, account func(int) string) *bridgeEnv {
	e.t.Helper()
	n := &bridgeEnv{t: e.t, side: e.side, name: name, ctx: e.ctx, c: e.c, dir: e.dir, secret: e.secret, bank: e.bank,
		simCfg: e.simCfg, simURL: e.simURL, sim: e.sim}
	n.writeBridgeConfig(name + "-data")
	n.startBridge()
	n.link(keys, account)
	return n
}

// link links each of keys (dev wallet i) to the bank account name(i) at
// this bridge.
func (e *bridgeEnv) link(keys []*crypto.PrivateKey, name func(int) string) {
	e.t.Helper()
	for i, k := range keys {
		msg := bridge.LinkMessage(e.bank.Address(), name(i), k.Address())
		sig, err := k.Sign(common.BytesToHash(accounts.TextHash([]byte(msg))))
		if err != nil {
			e.t.Fatal(err)
		}
		sig[64] += 27
		body, _ := json.Marshal(bridge.LinkRequest{Account: name(i), Wallet: k.Address().Hex(), Signature: fmt.Sprintf("0x%x", sig)})
		if code, out := e.post(e.bridgeURL+bridge.PathLinks, body); code != http.StatusOK {
			e.t.Fatalf("link %s at %s: %d %s", name(i), e.name, code, out)
		}
	}
}

func TestBridgeEndToEnd(t *testing.T) {
	skipShort(t)
	began := time.Now()
	buildTally(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	c := newTestCluster(t, 3, nil)
	c.startAll()
	c.waitLeader(ctx, []int{0, 1, 2}, "", 30*time.Second)

	e, bank, keys, sup0 := setupBridge(t, ctx, c, "e2e-bridge-hmac-secret-0123456789", brWallets, account)
	t.Logf("setup done after %v", time.Since(began).Round(time.Millisecond))

	// ---- 1. deposits, with faults ----
	depCents := make([]int64, brDeposits)
	wantRefs := map[common.Hash]string{}
	deposited := make([]int64, brWallets)
	var depTotal int64
	var reqs []depReq
	for i := range brDeposits {
		depCents[i] = 1000 + int64(i%50)*101
		ref := fmt.Sprintf("E2E-DEP-%03d", i)
		reqs = append(reqs, depReq{Account: account(i % brWallets), Amount: cents(depCents[i]), Reference: ref})
		deposited[i%brWallets] += depCents[i]
		depTotal += depCents[i]
	}
	mintedCount := func() int { return len(e.mintedRefs()) }
	waitMinted := func(n int, timeout time.Duration) {
		t.Helper()
		var got int
		pollUntil(t, timeout, func() string { return fmt.Sprintf("%d distinct mints (have %d)", n, got) }, func() bool {
			got = mintedCount()
			return got >= n
		})
	}

	// 1a: 50 plain deposits.
	e.deposit(reqs[0:50])
	// 1b: 40 deposits, each message sent twice, and in reverse order.
	e.faults(`{"duplicate": 40, "reorder": true}`)
	e.deposit(reqs[50:90])
	e.faults(`{"duplicate": 0, "reorder": false}`)
	waitMinted(20, 60*time.Second)
	// 1c: SIGKILL the bridge mid-stream, restart it.
	e.deposit(reqs[90:140])
	waitMinted(70, 60*time.Second)
	// Every duplicated notification reached this run and was recognised.
	pollUntil(t, 30*time.Second, func() string { return "40 duplicate verdicts" }, func() bool {
		return e.metric("tally_bridge_entries_total", `verdict="duplicate"`) >= 40
	})
	before := mintedCount()
	e.bridge.kill()
	t.Logf("bridge killed with %d of %d deposits minted", before, brDeposits)
	e.startBridge()
	// 1d: the bank core down for a while (nothing delivered), then back.
	e.faults(`{"down": "2s", "downMode": "close"}`)
	e.deposit(reqs[140:170])
	waitMinted(110, 60*time.Second)
	// 1e: kill the cluster leader mid-stream. Node 0 (the bridge's first
	// endpoint, the one it uses while nothing fails) is made the leader
	// first, so the bridge has to fail over.
	leader, _ := c.waitLeader(ctx, []int{0, 1, 2}, "", 30*time.Second)
	if leader != 0 {
		var res string
		c.mustAdmin(ctx, leader, &res, "admin_transferLeadership", c.specs[0].PeerID)
		leader, _ = c.waitLeader(ctx, []int{0, 1, 2}, c.specs[leader].PeerID, 30*time.Second)
		if leader != 0 {
			t.Fatalf("leadership went to node %d, not 0", leader)
		}
	}
	failovers0 := e.metric("tally_bridge_node_failovers_total")
	e.deposit(reqs[170:200])
	waitMinted(150, 60*time.Second)
	e.readFrom = others([]int{0, 1, 2}, leader)[0]
	c.kill(leader)
	t.Logf("leader node %d killed with %d deposits minted", leader, mintedCount())
	rest := others([]int{0, 1, 2}, leader)
	c.waitLeader(ctx, rest, c.specs[leader].PeerID, 30*time.Second)
	waitMinted(brDeposits, 90*time.Second)
	if f := e.metric("tally_bridge_node_failovers_total"); f <= failovers0 {
		t.Errorf("the bridge minted past the leader's death without a failover (failovers %v → %v)", failovers0, f)
	} else {
		t.Logf("bridge failed over %v times after node %d died", f-failovers0, leader)
	}
	c.start(leader)
	c.waitConverged(ctx, []int{0, 1, 2}, 60*time.Second)
	// Each credit the simulator booked mints under its deposit key: the
	// omnibus account, the transaction's reference, the booking date.
	for _, en := range e.ledger().Entries {
		if en.Credit {
			wantRefs[e.depositBankRef(bank.Address(), en.Ref)] = en.Ref
		}
	}
	minted := e.mintedRefs()
	if len(minted) != brDeposits {
		t.Fatalf("%d distinct bankRefs minted by bank B, want %d", len(minted), brDeposits)
	}
	for ref, n := range minted {
		if n != 1 {
			t.Errorf("bankRef %s (%s) minted %d times", ref, wantRefs[ref], n)
		}
		if _, ok := wantRefs[ref]; !ok {
			t.Errorf("bankRef %s minted but no deposit has it", ref)
		}
	}
	t.Logf("deposits: all %d minted exactly once after %v", brDeposits, time.Since(began).Round(time.Millisecond))

	// ---- 2. withdrawals: 50 paid out, 5 rejected, with faults ----
	type wd struct {
		wallet int
		cents  int64
		reject bool
		id     uint64
	}
	var wds []*wd
	for j := range brSettled {
		wds = append(wds, &wd{wallet: j % brWallets, cents: 500 + int64(j)})
	}
	for j := range brRejected {
		wds = append(wds, &wd{wallet: j, cents: 95000, reject: true})
	}
	requested := e.logs("WithdrawalRequested")
	if len(requested) != 0 {
		t.Fatalf("%d withdrawals before the test asked for any", len(requested))
	}
	// The bank core is down (503) while the first orders go out.
	e.faults(`{"down": "60s", "downMode": "503"}`)
	var wg sync.WaitGroup
	errs := make(chan error, len(wds))
	for w := range brWallets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := wallet.Dial(ctx, c.specs[(w%2+leader+1)%3].RPC)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for _, x := range wds {
				if x.wallet != w {
					continue
				}
				op, err := wallet.AssetOp(brHKD, "requestWithdrawal", big.NewInt(x.cents), [32]byte{})
				if err != nil {
					errs <- err
					return
				}
				tx, err := cl.Send(ctx, keys[w], op)
				if err != nil {
					errs <- fmt.Errorf("wallet %d: %w", w, err)
					return
				}
				r, err := cl.WaitReceipt(ctx, tx.Hash())
				if err != nil || r.Status != types.ReceiptStatusSuccessful {
					errs <- fmt.Errorf("wallet %d: requestWithdrawal receipt %v: %v", w, r, err)
					return
				}
				for _, l := range r.Logs {
					if l.Topics[0] == chain.AssetABI.Events["WithdrawalRequested"].ID {
						x.id = new(big.Int).SetBytes(l.Topics[1][:]).Uint64()
					}
				}
				if x.id == 0 {
					errs <- fmt.Errorf("wallet %d: no WithdrawalRequested log", w)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pollUntil(t, 30*time.Second, func() string { return "a payout order refused by the down core" }, func() bool {
		return e.metric("tally_bridge_payout_orders_total", `result="error"`) >= 1
	})
	if n := len(e.ledger().Orders); n != 0 {
		t.Fatalf("the simulator took %d orders while down", n)
	}
	e.faults(`{"down": "0s"}`)
	// SIGKILL the bridge mid payout stream, once some orders are out.
	pollUntil(t, 60*time.Second, func() string { return "10 payout orders at the simulator" }, func() bool { return len(e.ledger().Orders) >= 10 })
	e.bridge.kill()
	t.Logf("bridge killed with %d payout orders at the simulator", len(e.ledger().Orders))
	e.startBridge()

	closed := func() (settled, refunded map[uint64]int) {
		settled, refunded = map[uint64]int{}, map[uint64]int{}
		for _, l := range e.logs("WithdrawalSettled", nil, []common.Hash{e.bankTopic()}) {
			settled[new(big.Int).SetBytes(l.Topics[1][:]).Uint64()]++
		}
		for _, l := range e.logs("WithdrawalRefunded", nil, []common.Hash{e.bankTopic()}) {
			refunded[new(big.Int).SetBytes(l.Topics[1][:]).Uint64()]++
		}
		return
	}
	var settled, refunded map[uint64]int
	pollUntil(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d settled + %d refunded withdrawals (have %d + %d)", brSettled, brRejected, len(settled), len(refunded))
	}, func() bool {
		settled, refunded = closed()
		return len(settled)+len(refunded) >= len(wds)
	})
	ids := map[uint64]*wd{}
	for _, x := range wds {
		ids[x.id] = x
	}
	for id, n := range settled {
		if n != 1 || refunded[id] != 0 || ids[id] == nil || ids[id].reject {
			t.Errorf("withdrawal %d: settled %d times, refunded %d times (%+v)", id, n, refunded[id], ids[id])
		}
	}
	for id, n := range refunded {
		if n != 1 || settled[id] != 0 || ids[id] == nil || !ids[id].reject {
			t.Errorf("withdrawal %d: refunded %d times, settled %d times (%+v)", id, n, settled[id], ids[id])
		}
	}
	if len(settled) != brSettled || len(refunded) != brRejected {
		t.Fatalf("%d settled, %d refunded; want %d and %d", len(settled), len(refunded), brSettled, brRejected)
	}
	// The refund carries the bank's reason.
	for _, l := range e.logs("WithdrawalRefunded", nil, []common.Hash{e.bankTopic()}) {
		vals, err := chain.AssetABI.Events["WithdrawalRefunded"].Inputs.NonIndexed().Unpack(l.Data)
		if err != nil {
			t.Fatal(err)
		}
		id := new(big.Int).SetBytes(l.Topics[1][:]).Uint64()
		reason, _ := vals[len(vals)-1].(string)
		want := fmt.Sprintf("payout TALLY-%d-HKD-W%d rejected by the bank: AC04", devChainID, id)
		if !strings.HasPrefix(reason, want) || !strings.Contains(reason, "account closed") {
			t.Errorf("withdrawal %d refunded with reason %q, want %q… account closed", id, reason, want)
		}
	}
	t.Logf("withdrawals: %d settled, %d refunded, each once, after %v", len(settled), len(refunded), time.Since(began).Round(time.Millisecond))

	// ---- 3. balances, supply, the simulator's ledger, reconcile ----
	pollUntil(t, 30*time.Second, func() string { return "the bridge's records to close" }, func() bool {
		s := e.status()
		return s.Deposits["minted"] == brDeposits && s.Payouts["closed"] == uint64(len(wds))
	})
	var settledTotal int64
	withdrawn := make([]int64, brWallets)
	for _, x := range wds {
		if !x.reject {
			withdrawn[x.wallet] += x.cents
			settledTotal += x.cents
		}
	}
	wc, err := wallet.Dial(ctx, c.specs[rest[0]].RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	for i, k := range keys {
		acct, err := wc.Account(ctx, k.Address())
		if err != nil {
			t.Fatal(err)
		}
		want := new(big.Int).Add(genesis.DevHKDBalance, big.NewInt(deposited[i]-withdrawn[i]))
		if got := acct.Balances["HKD"].ToInt(); got.Cmp(want) != 0 {
			t.Errorf("wallet %d: HKD balance %s, want %s", i, got, want)
		}
	}
	sup, err := wc.Supply(ctx, "HKD")
	if err != nil {
		t.Fatal(err)
	}
	if d := new(big.Int).Sub(sup.Minted.ToInt(), sup0.Minted.ToInt()); d.Cmp(big.NewInt(depTotal)) != 0 {
		t.Errorf("supply: minted grew by %s, want %d", d, depTotal)
	}
	if d := new(big.Int).Sub(sup.Burned.ToInt(), sup0.Burned.ToInt()); d.Cmp(big.NewInt(settledTotal)) != 0 {
		t.Errorf("supply: burned grew by %s, want %d", d, settledTotal)
	}
	if sup.Escrow.ToInt().Sign() != 0 {
		t.Errorf("supply: escrow %s after every withdrawal closed", sup.Escrow.ToInt())
	}
	led := e.ledger()
	if got, want := led.Balances["SIM-OMNIBUS-0001"], cents(depTotal-settledTotal); got != want {
		t.Errorf("simulator omnibus balance %s, want %s (deposits %s − payouts %s)", got, want, cents(depTotal), cents(settledTotal))
	}
	// Each payout ordered once, under its stable identifiers: MsgId
	// TALLY-…-M<id> for EndToEndId TALLY-…-W<id>, kept across re-sends.
	orders := map[string]int{}
	var acsc, rjct int
	for _, o := range led.Orders {
		orders[o.EndToEndID]++
		if want := strings.Replace(o.EndToEndID, "-HKD-W", "-HKD-M", 1); o.MsgID != want {
			t.Errorf("order %s has EndToEndId %s (want MsgId %s)", o.MsgID, o.EndToEndID, want)
		}
		switch o.Status {
		case "ACSC":
			acsc++
		case "RJCT":
			rjct++
		}
	}
	for _, x := range wds {
		id := fmt.Sprintf("TALLY-%d-HKD-W%d", devChainID, x.id)
		if orders[id] != 1 {
			t.Errorf("payout %s received %d times by the simulator", id, orders[id])
		}
	}
	if len(led.Orders) != len(wds) || acsc != brSettled || rjct != brRejected {
		t.Errorf("simulator: %d orders (%d ACSC, %d RJCT), want %d (%d, %d)", len(led.Orders), acsc, rjct, len(wds), brSettled, brRejected)
	}
	var credits, debits int
	for _, en := range led.Entries {
		if en.Credit {
			credits++
		} else {
			debits++
		}
	}
	if credits != brDeposits || debits != brSettled {
		t.Errorf("simulator ledger: %d credits, %d debits; want %d, %d", credits, debits, brDeposits, brSettled)
	}

	out, err := e.reconcile(t)
	if err != nil {
		t.Fatalf("tally bridge reconcile: %v\n%s", err, out)
	}
	t.Logf("tally bridge reconcile: exit 0\n%s", out)

	// ---- 4. the audit and proofs over the bridge's data (issue 8) ----
	rep := c.mustAudit("bridge", "--rpc", c.specs[e.readFrom].RPC)
	c.checkSupply(ctx, e.readFrom, rep)
	var hkdRow bool
	for _, row := range rep.Supply {
		if row.Symbol == "HKD" {
			hkdRow = row.Minted == sup.Minted.ToInt().String() && row.Burned == sup.Burned.ToInt().String()
		}
	}
	if !hkdRow {
		t.Fatalf("audit supply %+v: no HKD row with minted %s, burned %s", rep.Supply, sup.Minted.ToInt(), sup.Burned.ToInt())
	}
	mintLog := e.logs("Minted", nil, []common.Hash{e.bankTopic()})[0]
	settleLog := e.logs("WithdrawalSettled", nil, []common.Hash{e.bankTopic()})[0]
	c.mustProve(e.readFrom, "deposit", mintLog.TxHash, mintLog.BlockNumber, 0)
	c.mustProve(e.readFrom, "payout", settleLog.TxHash, settleLog.BlockNumber, 0)
	t.Logf("TestBridgeEndToEnd done in %v", time.Since(began).Round(time.Millisecond))
}

// reconcile runs `tally bridge reconcile` for bridge e against the camt.053
// its simulator serves now, and returns what it printed.
func (e *bridgeEnv) reconcile(t *testing.T) ([]byte, error) {
	t.Helper()
	resp, err := http.Get(e.simURL + bankcore.PathStatement)
	if err != nil {
		t.Fatal(err)
	}
	stmt, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sim/statement: %d %s", resp.StatusCode, stmt)
	}
	path := filepath.Join(e.dir, e.name+"-camt053.xml")
	if err := os.WriteFile(path, stmt, 0o600); err != nil {
		t.Fatal(err)
	}
	return exec.Command(buildTally(t), "bridge", "reconcile", "--config", e.cfgPath, "--statement", path).CombinedOutput()
}
