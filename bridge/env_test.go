package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/bankcore"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// The dev chain's HKD (genesis.BuildDev): asset 1, 2 decimals, issued by
// bank B.
const (
	hkdID       = 1
	hkdDecimals = 2
)

// testEnv is a dev node, the bank's key, an HMAC secret and a fake bank
// core, shared by the subtests of TestBridgeOnDevNode. Each subtest runs
// its own bridge on its own data dir, with its own wallets and references,
// so the chain's totals move only by what that subtest does.
type testEnv struct {
	ctx        context.Context
	node       *wallettest.Node
	client     *wallet.Client
	bank       *crypto.PrivateKey
	secret     []byte
	secretFile string
	// orderSecret signs the bridge's orders (auth.order-secret-file).
	orderSecret     []byte
	orderSecretFile string
	// tokensFile lists the operators: opToken is "alice"'s, opToken2 "bob"'s.
	tokensFile string
	core       *fakeCore
}

const (
	opToken  = "alice-token-0123456789abcdef0123456789"
	opToken2 = "bob-token-0123456789abcdef0123456789ab"
)

func newTestEnv(t *testing.T) *testEnv {
	node := wallettest.StartDevNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	client, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	e := &testEnv{ctx: ctx, node: node, client: client, bank: devKey(t, genesis.DevBankBIndex),
		secret: []byte("test-secret-0123456789abcdef0123")}
	e.secretFile = filepath.Join(t.TempDir(), "hmac.secret")
	if err := os.WriteFile(e.secretFile, append(e.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	e.orderSecret = []byte("order-secret-0123456789abcdef0123")
	e.orderSecretFile = filepath.Join(t.TempDir(), "order.secret")
	e.tokensFile = filepath.Join(t.TempDir(), "operators")
	for f, data := range map[string][]byte{e.orderSecretFile: e.orderSecret,
		e.tokensFile: []byte("# operators\nalice " + opToken + "\nbob " + opToken2 + "\n")} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.core = newFakeCore(t, e.orderSecret)
	return e
}

// config is a test bridge's config: fast polling, the JSON payout format.
func (e *testEnv) config(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "bridge")
	cfg.Asset = "HKD"
	cfg.Key.KeystoreFile = "unused: the tests pass Options.Key"
	cfg.Nodes.Endpoints = []string{e.node.URL}
	cfg.Nodes.Timeout = Duration(5 * time.Second)
	cfg.BankCore.URL = e.core.srv.URL
	cfg.BankCore.Format = FormatJSON
	cfg.Auth.IntakeSecretFile = e.secretFile
	cfg.Auth.OrderSecretFile = e.orderSecretFile
	cfg.Operator.TokensFile = e.tokensFile
	fast := Duration(20 * time.Millisecond)
	cfg.Outbox.PollInterval, cfg.Follower.PollInterval, cfg.Payout.PollInterval, cfg.Closer.PollInterval = fast, fast, fast, fast
	cfg.Outbox.ReceiptTimeout = Duration(5 * time.Second)
	cfg.Payout.RetryMin, cfg.Payout.RetryMax = Duration(20*time.Millisecond), Duration(80*time.Millisecond)
	cfg.Log.Level = "warn"
	return cfg
}

// open makes a bridge on cfg; set changes it (hooks) before Start. Close
// runs at the end of the test unless the test closed it.
func (e *testEnv) open(t *testing.T, cfg Config, set func(*Bridge)) *Bridge {
	t.Helper()
	b, err := New(cfg, Options{Key: e.bank, Logger: cfg.NewLogger(testWriter{t})})
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	if set != nil {
		set(b)
	}
	if err := b.Start(e.ctx); err != nil {
		b.Close()
		t.Fatalf("start bridge: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testWriter sends the bridge's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// post sends a signed POST to the bridge and decodes its answer.
func (e *testEnv) post(t *testing.T, b *Bridge, path string, body []byte, header string) (int, Response) {
	t.Helper()
	if header == "" {
		header = Sign(e.secret, body, time.Now())
	}
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, "http://"+b.Addr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(SignatureHeader, header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %s: answer %q is not JSON: %v", path, resp.Status, raw, err)
	}
	return resp.StatusCode, out
}

// notify posts a JSON notification of credit entries.
func (e *testEnv) notify(t *testing.T, b *Bridge, msgID string, entries ...jsonEntry) (int, Response) {
	t.Helper()
	body, err := json.Marshal(jsonNotification{MsgID: msgID, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	return e.post(t, b, PathNotifications, body, "")
}

// credit is a booked HKD credit entry.
func credit(ref, account, amount string) jsonEntry {
	yes := true
	return jsonEntry{Ref: ref, Account: account, Amount: &amount, Currency: "HKD", Credit: &yes}
}

// link links account to key's wallet through POST /v1/links, signing as
// MetaMask's personal_sign does (v = 27 or 28).
func (e *testEnv) link(t *testing.T, b *Bridge, key *crypto.PrivateKey, account string) {
	t.Helper()
	msg := LinkMessage(b.Bank(), account, key.Address())
	sig, err := key.Sign(common.BytesToHash(accounts.TextHash([]byte(msg))))
	if err != nil {
		t.Fatal(err)
	}
	sig[64] += 27
	body, _ := json.Marshal(LinkRequest{Account: account, Wallet: key.Address().Hex(), Signature: fmt.Sprintf("0x%x", sig)})
	if code, resp := e.post(t, b, PathLinks, body, ""); code != http.StatusOK {
		t.Fatalf("link %s → %s: %d %+v", account, key.Address(), code, resp)
	}
}

// reportStatus posts a JSON payment status report for one payout.
func (e *testEnv) reportStatus(t *testing.T, b *Bridge, msgID, endToEndID, status, reason string) (int, Response) {
	t.Helper()
	body, _ := json.Marshal(jsonStatusReport{MsgID: msgID, Statuses: []jsonStatusItem{{EndToEndID: endToEndID, Status: status, Reason: reason}}})
	return e.post(t, b, PathPaymentStatus, body, "")
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deposit reads the one deposit whose transaction reference is ref.
func deposit(t *testing.T, b *Bridge, ref string) *Deposit {
	t.Helper()
	d := findDeposit(t, b, ref)
	if d == nil {
		t.Fatalf("no deposit has reference %s", ref)
	}
	return d
}

// findDeposit is deposit, or nil while none has the reference.
func findDeposit(t *testing.T, b *Bridge, ref string) *Deposit {
	t.Helper()
	ds, err := b.Store().Deposits(100_000)
	if err != nil {
		t.Fatal(err)
	}
	var found *Deposit
	for _, d := range ds {
		if d.Ref == ref {
			if found != nil {
				t.Fatalf("two deposits have reference %s: %+v and %+v", ref, found.Key, d.Key)
			}
			found = d
		}
	}
	return found
}

func waitDeposit(t *testing.T, b *Bridge, ref string, st DepositStatus) *Deposit {
	t.Helper()
	var d *Deposit
	waitFor(t, "deposit "+ref+" "+string(st), func() bool {
		d = findDeposit(t, b, ref)
		return d != nil && d.Status == st
	})
	return d
}

func waitPayout(t *testing.T, b *Bridge, id uint64, st PayoutStatus) *Payout {
	t.Helper()
	var p *Payout
	waitFor(t, fmt.Sprintf("payout %d %s", id, st), func() bool {
		var err error
		p, err = b.Store().Payout(id)
		return err == nil && p.Status == st
	})
	return p
}

// ---- chain reads ----

func devKey(t *testing.T, i uint32) *crypto.PrivateKey {
	t.Helper()
	k, err := genesis.DevKey(i)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func freshKey(t *testing.T) *crypto.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hkd(t *testing.T, s string) *big.Int {
	t.Helper()
	v, err := wallet.ParseAmount(s, hkdDecimals)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *testEnv) balance(t *testing.T, a common.Address) *big.Int {
	t.Helper()
	acct, err := e.client.Account(e.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if v := acct.Balances["HKD"]; v != nil {
		return v.ToInt()
	}
	return new(big.Int)
}

func (e *testEnv) supply(t *testing.T) (minted, burned *big.Int) {
	t.Helper()
	s, err := e.client.Supply(e.ctx, "HKD")
	if err != nil {
		t.Fatal(err)
	}
	return s.Minted.ToInt(), s.Burned.ToInt()
}

// logs counts the facade's logs of event with topic1 = first.
func (e *testEnv) logs(t *testing.T, event string, first common.Hash) []types.Log {
	t.Helper()
	q := ethereum.FilterQuery{FromBlock: big.NewInt(0), Addresses: []common.Address{chain.AssetAddress(hkdID)},
		Topics: [][]common.Hash{{chain.AssetABI.Events[event].ID}, {first}}}
	logs, err := e.client.Eth().FilterLogs(e.ctx, q)
	if err != nil {
		t.Fatalf("eth_getLogs %s: %v", event, err)
	}
	return logs
}

// send signs op with key, sends it and waits for a successful receipt.
func (e *testEnv) send(t *testing.T, key *crypto.PrivateKey, op wallet.Op) *types.Receipt {
	t.Helper()
	tx, err := e.client.Send(e.ctx, key, op)
	if err != nil {
		t.Fatalf("%s: %v", op.Method, err)
	}
	r, err := e.client.WaitReceipt(e.ctx, tx.Hash())
	if err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("%s: receipt %+v, %v", op.Method, r, err)
	}
	return r
}

// withdraw has key request a withdrawal of amount HKD and returns its id.
func (e *testEnv) withdraw(t *testing.T, key *crypto.PrivateKey, amount string, payoutRef [32]byte) uint64 {
	t.Helper()
	op, err := wallet.AssetOp(hkdID, "requestWithdrawal", hkd(t, amount), payoutRef)
	if err != nil {
		t.Fatal(err)
	}
	r := e.send(t, key, op)
	for _, l := range r.Logs {
		if l.Topics[0] == withdrawalRequested.ID {
			return new(big.Int).SetBytes(l.Topics[1][:]).Uint64()
		}
	}
	t.Fatalf("no WithdrawalRequested log in %+v", r.Logs)
	return 0
}

// withdrawalStatus reads withdrawal(id)'s status on chain.
func (e *testEnv) withdrawalStatus(t *testing.T, id uint64) uint8 {
	t.Helper()
	op, _ := wallet.AssetOp(hkdID, "withdrawal", new(big.Int).SetUint64(id))
	out, err := e.client.View(e.ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	return out[3].(uint8)
}

// ---- the fake bank core ----

// fakeCore is a bank core's payout endpoint: it checks the bridge's HMAC,
// keeps every order it receives, and can be told to be down for a while.
type fakeCore struct {
	srv    *httptest.Server
	secret []byte

	mu       sync.Mutex
	received []receivedOrder
	drop     int // close the connection on the next drop requests
	fail     int // answer 503 to the next fail requests
}

type receivedOrder struct {
	contentType, idempotencyKey string
	body                        []byte
	order                       PayoutOrder // when JSON
	answered                    int
}

func newFakeCore(t *testing.T, secret []byte) *fakeCore {
	c := &fakeCore{secret: secret}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *fakeCore) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	ro := receivedOrder{contentType: r.Header.Get("Content-Type"), idempotencyKey: r.Header.Get("Idempotency-Key"), body: body}
	json.Unmarshal(body, &ro.order)
	switch {
	case Verify(c.secret, body, r.Header.Get(SignatureHeader), time.Now(), time.Minute) != nil:
		ro.answered = http.StatusUnauthorized
	case c.drop > 0:
		// Down: the connection closes without an answer.
		c.drop--
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				ro.answered = -1
				c.received = append(c.received, ro)
				conn.Close()
				return
			}
		}
		ro.answered = http.StatusServiceUnavailable
	case c.fail > 0:
		c.fail--
		ro.answered = http.StatusServiceUnavailable
	default:
		ro.answered = http.StatusAccepted
	}
	c.received = append(c.received, ro)
	w.WriteHeader(ro.answered)
	fmt.Fprintf(w, `{"status":%d}`, ro.answered)
}

// orders returns the orders received for a payout, answered or not: id
// is the order's MsgId (its Idempotency-Key) or the payout's EndToEndId.
func (c *fakeCore) orders(id string) []receivedOrder {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []receivedOrder
	for _, o := range c.received {
		if o.idempotencyKey == id || o.order.EndToEndID == id || bytes.Contains(o.body, []byte("<EndToEndId>"+id+"</EndToEndId>")) {
			out = append(out, o)
		}
	}
	return out
}

// sameOrder reports whether two sends are the same order: every field but
// the send time and the requested execution date (refreshed on a re-send).
func sameOrder(a, b receivedOrder) bool {
	x, y := a.order, b.order
	x.CreatedAt, y.CreatedAt, x.ExecutionDate, y.ExecutionDate = time.Time{}, time.Time{}, "", ""
	return a.idempotencyKey == b.idempotencyKey && x == y
}

func (c *fakeCore) down(drop, fail int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop, c.fail = drop, fail
}

func accountsTextHash(msg string) []byte { return accounts.TextHash([]byte(msg)) }

// logsUnpack decodes the non-indexed fields of an asset event.
func logsUnpack(event string, data []byte) ([]any, error) {
	return chain.AssetABI.Events[event].Inputs.NonIndexed().Unpack(data)
}

// startSim starts the bank core simulator for this env (its secrets, HKD,
// retries every 50ms), with set adjusting its config, and returns it, its
// config and a bridge config that sends it pain.001 orders from its
// omnibus account. The caller opens the bridge and points the simulator
// at it (SetBridgeURL).
func (e *testEnv) startSim(t *testing.T, set func(*bankcore.Config)) (*bankcore.Sim, bankcore.Config, Config) {
	t.Helper()
	simCfg := bankcore.DefaultConfig()
	simCfg.Listen = "127.0.0.1:0"
	simCfg.BridgeURL = "http://127.0.0.1:1" // set once the bridge listens
	simCfg.SecretFile = e.secretFile
	simCfg.OrderSecretFile = e.orderSecretFile
	simCfg.Currency = "HKD"
	simCfg.RetryInterval = bankcore.Duration(50 * time.Millisecond)
	set(&simCfg)
	sim, err := bankcore.New(simCfg, bankcore.Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	cfg := e.config(t)
	cfg.BankCore.URL = sim.URL()
	cfg.BankCore.Format = FormatPain001
	cfg.BankCore.DebtorAccount = simCfg.OmnibusAccount
	return sim, simCfg, cfg
}

// waitOneOrders waits until one of two instances of a bank has ordered
// withdrawal id's payout and the other has closed it unordered, and
// returns them in that order.
func waitOneOrders(t *testing.T, b1, b2 *Bridge, id uint64) (winner, loser *Bridge) {
	t.Helper()
	waitFor(t, "one instance to order the payout and the other to close it", func() bool {
		p1, err1 := b1.Store().Payout(id)
		p2, err2 := b2.Store().Payout(id)
		switch {
		case err1 != nil || err2 != nil:
			return false
		case p1.Status == PayoutOrdered && p2.Status == PayoutClosed:
			winner, loser = b1, b2
		case p2.Status == PayoutOrdered && p1.Status == PayoutClosed:
			winner, loser = b2, b1
		default:
			return false
		}
		return true
	})
	return winner, loser
}
