package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/mempool"
	"github.com/tally-ledger/tally/store"
)

// steppedLimiter returns a limiter on a clock that moves only when told.
func steppedLimiter(t *testing.T, l RateLimits) (*RateLimiter, func(time.Duration)) {
	t.Helper()
	rl, err := NewRateLimiter(l)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	rl.now = func() time.Time { return now }
	return rl, func(d time.Duration) { now = now.Add(d) }
}

// wantLimited checks err is the -32005 error naming what.
func wantLimited(t *testing.T, err error, what string) {
	t.Helper()
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.Code != CodeLimitExceeded || !strings.Contains(rerr.Msg, "rate limit exceeded for "+what) {
		t.Fatalf("got %v, want -32005 \"rate limit exceeded for %s\"", err, what)
	}
}

func addr(i byte) *common.Address { a := common.Address{i}; return &a }

func TestRateLimiterAccountBucket(t *testing.T) {
	rl, step := steppedLimiter(t, RateLimits{PerAccount: 2, AccountBurst: 3, MaxTracked: 10})
	a, b := addr(1), addr(2)
	for i := 0; i < 3; i++ {
		if err := rl.Allow("10.0.0.1:1000", a); err != nil {
			t.Fatalf("burst tx %d: %v", i, err)
		}
	}
	err := rl.Allow("10.0.0.1:1000", a)
	wantLimited(t, err, "account "+a.Hex()+" (2 tx/s)")
	if err := rl.Allow("10.0.0.1:1000", b); err != nil {
		t.Fatalf("another sender is limited too: %v", err)
	}
	step(500 * time.Millisecond) // 2 tx/s: one token back
	if err := rl.Allow("10.0.0.1:1000", a); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	wantLimited(t, rl.Allow("10.0.0.1:1000", a), "account")
	step(time.Hour) // refills to the burst, no further
	for i := 0; i < 3; i++ {
		if err := rl.Allow("10.0.0.1:1000", a); err != nil {
			t.Fatalf("burst after idle, tx %d: %v", i, err)
		}
	}
	wantLimited(t, rl.Allow("10.0.0.1:1000", a), "account")
}

func TestRateLimiterIPBucket(t *testing.T) {
	rl, _ := steppedLimiter(t, RateLimits{PerIP: 0.5, IPBurst: 2, MaxTracked: 10})
	for i := byte(0); i < 2; i++ {
		if err := rl.Allow("10.0.0.1:1000", addr(i)); err != nil {
			t.Fatal(err)
		}
	}
	wantLimited(t, rl.Allow("10.0.0.1:2000", addr(9)), "IP 10.0.0.1 (0.5 tx/s)") // another port, same client
	wantLimited(t, rl.Allow("[::ffff:10.0.0.1]:3000", addr(9)), "IP 10.0.0.1")   // IPv4-mapped: same client
	wantLimited(t, rl.Allow("10.0.0.1:1000", nil), "IP 10.0.0.1")                // no sender: still the client's
	if err := rl.Allow("10.0.0.2:1000", addr(9)); err != nil {
		t.Fatalf("another IP is limited too: %v", err)
	}

	// IPv6 clients count by /64.
	for i := byte(0); i < 2; i++ {
		if err := rl.Allow(fmt.Sprintf("[2001:db8:1:2::%x]:1000", i+1), addr(i)); err != nil {
			t.Fatal(err)
		}
	}
	wantLimited(t, rl.Allow("[2001:db8:1:2:ffff::9]:1000", addr(9)), "IP 2001:db8:1:2::/64")
	if err := rl.Allow("[2001:db8:1:3::1]:1000", addr(9)); err != nil {
		t.Fatalf("another /64 is limited too: %v", err)
	}

	// An address that is not an IP (in-process, IPC) has no IP limit.
	for i := 0; i < 5; i++ {
		if err := rl.Allow("", addr(1)); err != nil {
			t.Fatalf("no client address: %v", err)
		}
	}
	if _, ips := rl.tracked(); ips != 4 {
		t.Fatalf("%d client buckets, want 4 (10.0.0.1, 10.0.0.2, one per /64)", ips)
	}
}

// The IP is charged first, before the sender is known: a transaction its
// account refuses has still cost its client an IP token (its signature
// was checked), while one the IP refuses takes nothing from its account.
func TestRateLimiterIPChargedFirst(t *testing.T) {
	rl, _ := steppedLimiter(t, RateLimits{PerAccount: 1, AccountBurst: 1, PerIP: 1, IPBurst: 3, MaxTracked: 10})
	a, b, c := addr(1), addr(2), addr(3)
	if err := rl.Allow("10.0.0.1:1", a); err != nil { // IP 3 → 2
		t.Fatal(err)
	}
	wantLimited(t, rl.Allow("10.0.0.1:1", a), "account") // refused by the account: IP 2 → 1
	if err := rl.Allow("10.0.0.1:1", b); err != nil {    // IP 1 → 0
		t.Fatal(err)
	}
	wantLimited(t, rl.Allow("10.0.0.1:1", c), "IP") // refused by the IP: c's bucket stays full
	if err := rl.Allow("10.0.0.2:1", c); err != nil {
		t.Fatalf("account charged for a refused transaction: %v", err)
	}
	// chargeIP refuses before any sender is known.
	if _, err := rl.chargeIP("10.0.0.1:1"); err == nil {
		t.Fatal("chargeIP let an exhausted client through")
	}
}

func TestRateLimiterExempt(t *testing.T) {
	trusted := addr(7)
	rl, _ := steppedLimiter(t, RateLimits{PerAccount: 1, AccountBurst: 1, PerIP: 1, IPBurst: 1, MaxTracked: 10,
		Exempt: func(a common.Address) bool { return a == *trusted }})
	for i := 0; i < 100; i++ {
		if err := rl.Allow("10.0.0.1:1", trusted); err != nil {
			t.Fatalf("exempt sender, tx %d: %v", i, err)
		}
	}
	if accounts, _ := rl.tracked(); accounts != 0 {
		t.Fatalf("exempt traffic made %d account buckets", accounts)
	}
	// The client's IP budget is untouched (each exempt token came back):
	// one non-exempt transaction fits.
	if err := rl.Allow("10.0.0.1:1", addr(1)); err != nil {
		t.Fatalf("exempt transactions were charged to the IP: %v", err)
	}
	wantLimited(t, rl.Allow("10.0.0.1:1", addr(2)), "IP 10.0.0.1")
	// Over its IP limit a client is refused before its signatures are
	// recovered, so before anyone knows a sender is exempt.
	wantLimited(t, rl.Allow("10.0.0.1:1", trusted), "IP 10.0.0.1")
	if err := rl.Allow("10.0.0.2:1", nil); err != nil { // an unrecovered sender is never exempt
		t.Fatal(err)
	}
	wantLimited(t, rl.Allow("10.0.0.2:1", nil), "IP 10.0.0.2")
}

func TestRateLimiterTracksAtMostMaxTracked(t *testing.T) {
	rl, _ := steppedLimiter(t, RateLimits{PerAccount: 1, AccountBurst: 1, PerIP: 1, IPBurst: 1, MaxTracked: 3})
	for i := 0; i < 50; i++ {
		if err := rl.Allow(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256), addr(byte(i))); err != nil {
			t.Fatal(err)
		}
		if accounts, ips := rl.tracked(); accounts > 3 || ips > 3 {
			t.Fatalf("after %d senders: %d account, %d IP buckets, bound 3", i+1, accounts, ips)
		}
	}
	// Recency, not insertion, decides what is forgotten.
	rl, _ = steppedLimiter(t, RateLimits{PerAccount: 1, AccountBurst: 1, MaxTracked: 2})
	rl.Allow("", addr(1))
	rl.Allow("", addr(2))
	wantLimited(t, rl.Allow("", addr(1)), "account") // 1 is now the most recently used
	rl.Allow("", addr(3))                            // evicts 2
	wantLimited(t, rl.Allow("", addr(1)), "account")
	if err := rl.Allow("", addr(2)); err != nil {
		t.Fatalf("least recently used sender not forgotten: %v", err)
	}
}

func TestRateLimitsValidate(t *testing.T) {
	ok := RateLimits{PerAccount: 1, AccountBurst: 1, PerIP: 1, IPBurst: 1, MaxTracked: 1}
	cases := map[string]struct {
		edit func(*RateLimits)
		want string
	}{
		"negative rate":    {func(l *RateLimits) { l.PerAccount = -1 }, "PerAccount"},
		"NaN rate":         {func(l *RateLimits) { l.PerIP = math.NaN() }, "PerIP"},
		"infinite rate":    {func(l *RateLimits) { l.PerIP = math.Inf(1) }, "PerIP"},
		"zero burst":       {func(l *RateLimits) { l.AccountBurst = 0 }, "AccountBurst"},
		"zero IP burst":    {func(l *RateLimits) { l.IPBurst = 0 }, "IPBurst"},
		"nothing tracked":  {func(l *RateLimits) { l.MaxTracked = 0 }, "MaxTracked"},
		"negative tracked": {func(l *RateLimits) { l.MaxTracked = -5 }, "MaxTracked"},
	}
	b := newTestBackend(t)
	for name, c := range cases {
		l := ok
		c.edit(&l)
		if _, err := NewRateLimiter(l); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, c.want)
		}
		if _, err := NewServer(b, Limits{MaxBodyBytes: 1 << 20, MaxBatchItems: 10, Rate: l}, "test"); err == nil {
			t.Errorf("%s: NewServer accepted invalid rate limits", name)
		}
	}
	if _, err := NewRateLimiter(ok); err != nil {
		t.Fatal(err)
	}
	if err := (RateLimits{}).Validate(); err != nil || (RateLimits{}).Enabled() {
		t.Fatalf("zero limits (off): %v", err)
	}
	if err := DefaultLimits.Rate.Validate(); err != nil || !DefaultLimits.Rate.Enabled() {
		t.Fatalf("default limits: %v", err)
	}
}

// The error survives the wording SendRawTransaction gives submit errors.
func TestRateLimitErrorThroughClientError(t *testing.T) {
	rl, _ := steppedLimiter(t, RateLimits{PerAccount: 1, AccountBurst: 1, MaxTracked: 1})
	rl.Allow("", addr(1))
	err := rl.Allow("", addr(1))
	wantLimited(t, ClientError(err), "account "+addr(1).Hex()+" (1 tx/s)")
}

// testBackend admits into a real mempool over a state DB on the dev genesis.
type testBackend struct {
	db      *store.DB
	senders *chain.SenderCache
	pool    *mempool.Pool
	heads   *HeadFeed
}

func newTestBackend(t *testing.T) *testBackend {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	g := genesis.Dev()
	if err := db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	senders := chain.NewSenderCache(chain.NewSigner(g.ChainIDBig()), 1024)
	return &testBackend{db: db, senders: senders, pool: mempool.New(mempool.DefaultConfig, db, senders), heads: NewHeadFeed(1)}
}

func (b *testBackend) State() *store.DB            { return b.db }
func (b *testBackend) Senders() *chain.SenderCache { return b.senders }
func (b *testBackend) SubmitTx(_ context.Context, tx *types.Transaction) error {
	_, err := b.pool.Add(tx)
	return err
}
func (b *testBackend) PendingNonce(a common.Address) (uint64, error) { return b.pool.PendingNonce(a) }
func (b *testBackend) PendingTx(h common.Hash) (*types.Transaction, common.Address, bool) {
	return b.pool.Get(h)
}
func (b *testBackend) Syncing() (bool, uint64, uint64) { return false, 0, 0 }
func (b *testBackend) Heads() *HeadFeed                { return b.heads }

// followerBackend is a testBackend that, like a node, admits a batch's
// transactions together (a follower forwards them as one message); it
// records what it was handed, and checks that each transaction comes with
// the bytes it was decoded from.
type followerBackend struct {
	*testBackend
	mu      sync.Mutex
	batched map[common.Hash]bool
	batches int
	sizes   []int // each AdmitBatch call's transactions
}

func (b *followerBackend) AdmitBatch(ctx context.Context, batch []Admission) []error {
	b.mu.Lock()
	b.batches++
	b.sizes = append(b.sizes, len(batch))
	for _, a := range batch {
		b.batched[a.Tx.Hash()] = true
	}
	b.mu.Unlock()
	errs := make([]error, len(batch))
	for i, a := range batch {
		if raw, err := a.Tx.MarshalBinary(); err != nil || !bytes.Equal(raw, a.Raw) {
			errs[i] = fmt.Errorf("admission's raw bytes are not its transaction's")
			continue
		}
		errs[i] = b.SubmitTx(ctx, a.Tx)
	}
	return errs
}

func serve(t *testing.T, b Backend, rate RateLimits) *httptest.Server {
	t.Helper()
	limits := DefaultLimits
	limits.Rate = rate
	srv, err := NewServer(b, limits, "test")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Stop() })
	return ts
}

func devKey(t *testing.T, i uint32) *crypto.PrivateKey {
	t.Helper()
	k, err := genesis.DevKey(i)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signedTransfer(t *testing.T, key *crypto.PrivateKey, nonce uint64) *types.Transaction {
	t.Helper()
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0xbe, 0xef}
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Value: big.NewInt(1), Gas: 21000}), id, key)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

func rawHex(t *testing.T, tx *types.Transaction) string {
	t.Helper()
	raw, err := tx.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return hexutil.Encode(raw)
}

// exemptAllBut exempts every sender except the given ones.
func exemptAllBut(limited ...common.Address) func(common.Address) bool {
	return func(a common.Address) bool {
		for _, l := range limited {
			if a == l {
				return false
			}
		}
		return true
	}
}

func sendRaw(t *testing.T, rc *gethrpc.Client, tx *types.Transaction) error {
	t.Helper()
	var h common.Hash
	err := rc.Call(&h, "eth_sendRawTransaction", rawHex(t, tx))
	if err == nil && h != tx.Hash() {
		t.Fatalf("hash %s, want %s", h, tx.Hash())
	}
	return err
}

// wantCode checks a JSON-RPC error from go-ethereum's client.
func wantCode(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var rerr gethrpc.Error
	if !errors.As(err, &rerr) || rerr.ErrorCode() != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v, want code %d containing %q", err, code, msg)
	}
}

func TestRateLimitSingleCallsOverHTTP(t *testing.T) {
	b := newTestBackend(t)
	spammer, trusted := devKey(t, 0), devKey(t, 1)
	ts := serve(t, b, RateLimits{PerAccount: 0.001, AccountBurst: 2, MaxTracked: 100, Exempt: exemptAllBut(spammer.Address())})
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for n := uint64(0); n < 2; n++ {
		if err := sendRaw(t, rc, signedTransfer(t, spammer, n)); err != nil {
			t.Fatalf("within the burst, nonce %d: %v", n, err)
		}
	}
	over := signedTransfer(t, spammer, 2)
	wantCode(t, sendRaw(t, rc, over), CodeLimitExceeded, "rate limit exceeded for account "+spammer.Address().Hex()+" (0.001 tx/s)")
	if _, _, ok := b.pool.Get(over.Hash()); ok {
		t.Fatal("throttled transaction admitted")
	}
	if next, _ := b.pool.PendingNonce(spammer.Address()); next != 2 {
		t.Fatalf("pending nonce %d, want 2: the throttled transaction changed the pool", next)
	}
	var got *txJSON
	if err := rc.Call(&got, "eth_getTransactionByHash", over.Hash()); err != nil || got != nil {
		t.Fatalf("throttled transaction visible: %v %v", got, err)
	}
	for n := uint64(0); n < 10; n++ { // an exempt sender on the same connection
		if err := sendRaw(t, rc, signedTransfer(t, trusted, n)); err != nil {
			t.Fatalf("exempt sender, nonce %d: %v", n, err)
		}
	}
}

type batchReply struct {
	ID     int
	Result *common.Hash
	Error  *struct {
		Code    int
		Message string
	}
}

func postBatch(t *testing.T, url string, txs []*types.Transaction) map[int]batchReply {
	t.Helper()
	var body bytes.Buffer
	body.WriteByte('[')
	for i, tx := range txs {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":[%q]}`, i, rawHex(t, tx))
	}
	body.WriteByte(']')
	resp, err := http.Post(url, "application/json", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var replies []batchReply
	if err := json.NewDecoder(resp.Body).Decode(&replies); err != nil {
		t.Fatal(err)
	}
	byID := make(map[int]batchReply, len(replies))
	for _, r := range replies {
		byID[r.ID] = r
	}
	if len(byID) != len(txs) {
		t.Fatalf("%d replies to %d calls", len(byID), len(txs))
	}
	return byID
}

// A batch is charged before the node starts forwarding any of it: a
// throttled transaction is neither forwarded nor admitted, and one let
// through is not charged twice.
func TestRateLimitBatchOverHTTP(t *testing.T) {
	b := &followerBackend{testBackend: newTestBackend(t), batched: map[common.Hash]bool{}}
	limited, trusted, other := devKey(t, 0), devKey(t, 1), devKey(t, 2)
	ts := serve(t, b, RateLimits{PerAccount: 0.001, AccountBurst: 3, PerIP: 0.001, IPBurst: 7, MaxTracked: 100,
		Exempt: exemptAllBut(limited.Address(), other.Address())})
	var txs []*types.Transaction
	want := map[int]string{} // refused calls: the limit named
	for n := uint64(0); n < 5; n++ {
		txs = append(txs, signedTransfer(t, limited, n)) // 3 fit the account burst; all 5 take one of the IP's 7
		if n >= 3 {
			want[len(txs)-1] = "account " + limited.Address().Hex()
		}
	}
	for n := uint64(0); n < 4; n++ {
		txs = append(txs, signedTransfer(t, trusted, n)) // exempt: the IP's tokens come back
	}
	for n := uint64(0); n < 3; n++ {
		txs = append(txs, signedTransfer(t, other, n)) // 2 take the IP's last tokens
		if n == 2 {
			want[len(txs)-1] = "IP 127.0.0.1 (0.001 tx/s)"
		}
	}
	replies := postBatch(t, ts.URL, txs)
	for i, tx := range txs {
		r := replies[i]
		_, _, pooled := b.pool.Get(tx.Hash())
		if what, refused := want[i]; refused {
			if r.Error == nil || r.Error.Code != CodeLimitExceeded || !strings.Contains(r.Error.Message, "rate limit exceeded for "+what) {
				t.Errorf("call %d: %+v, want -32005 naming %s", i, r, what)
			}
			if pooled || b.batched[tx.Hash()] {
				t.Errorf("call %d: throttled transaction admitted (%v) or handed to AdmitBatch (%v)", i, pooled, b.batched[tx.Hash()])
			}
			continue
		}
		if r.Error != nil || r.Result == nil || *r.Result != tx.Hash() {
			t.Errorf("call %d: %+v %+v, want the hash", i, r.Error, r.Result)
		}
		if !pooled || !b.batched[tx.Hash()] {
			t.Errorf("call %d: admitted %v, handed to AdmitBatch %v; want both", i, pooled, b.batched[tx.Hash()])
		}
	}

	if b.batches != 1 {
		t.Errorf("the batch reached the node in %d AdmitBatch calls, want 1", b.batches)
	}

	// The same client, single calls: the buckets the batch emptied stay empty.
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	wantCode(t, sendRaw(t, rc, txs[len(txs)-1]), CodeLimitExceeded, "IP 127.0.0.1") // other still has an account token
	// Over its IP limit a client is refused before its signatures are
	// checked, exempt senders too.
	wantCode(t, sendRaw(t, rc, signedTransfer(t, trusted, 4)), CodeLimitExceeded, "IP 127.0.0.1")
}

// A request whose transactions are all exempt is not charged to its IP,
// batched or not; the IP's budget is left for the others.
func TestRateLimitIPSkippedWhenAllExempt(t *testing.T) {
	b := newTestBackend(t)
	limited := devKey(t, 0)
	ts := serve(t, b, RateLimits{PerIP: 0.001, IPBurst: 1, MaxTracked: 100, Exempt: exemptAllBut(limited.Address())})
	var batch []*types.Transaction
	for n := uint64(0); n < 10; n++ {
		batch = append(batch, signedTransfer(t, devKey(t, 1), n), signedTransfer(t, devKey(t, 2), n))
	}
	for i, r := range postBatch(t, ts.URL, batch) {
		if r.Error != nil {
			t.Fatalf("all-exempt batch, call %d: %+v", i, r.Error)
		}
	}
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for n := uint64(10); n < 20; n++ {
		if err := sendRaw(t, rc, signedTransfer(t, devKey(t, 1), n)); err != nil {
			t.Fatalf("exempt single call: %v", err)
		}
	}
	if err := sendRaw(t, rc, signedTransfer(t, limited, 0)); err != nil {
		t.Fatalf("the IP's one token was spent on exempt transactions: %v", err)
	}
	over := signedTransfer(t, limited, 1)
	wantCode(t, sendRaw(t, rc, over), CodeLimitExceeded, "rate limit exceeded for IP 127.0.0.1 (0.001 tx/s)")
	if _, _, ok := b.pool.Get(over.Hash()); ok {
		t.Fatal("throttled transaction admitted")
	}
}

func TestRateLimitOverWebSocket(t *testing.T) {
	b := newTestBackend(t)
	spammer := devKey(t, 0)
	ts := serve(t, b, RateLimits{PerAccount: 0.001, AccountBurst: 1, PerIP: 0.001, IPBurst: 3, MaxTracked: 100,
		Exempt: exemptAllBut(spammer.Address())})
	rc, err := gethrpc.Dial("ws" + strings.TrimPrefix(ts.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := sendRaw(t, rc, signedTransfer(t, spammer, 0)); err != nil {
		t.Fatal(err)
	}
	over := signedTransfer(t, spammer, 1)
	wantCode(t, sendRaw(t, rc, over), CodeLimitExceeded, "account "+spammer.Address().Hex())
	if _, _, ok := b.pool.Get(over.Hash()); ok {
		t.Fatal("throttled transaction admitted")
	}
	// A batch over the same connection is charged call by call.
	calls := []gethrpc.BatchElem{
		{Method: "eth_sendRawTransaction", Args: []any{rawHex(t, signedTransfer(t, devKey(t, 4), 0))}, Result: new(common.Hash)},
		{Method: "eth_sendRawTransaction", Args: []any{rawHex(t, signedTransfer(t, devKey(t, 5), 0))}, Result: new(common.Hash)},
	}
	ts2 := serve(t, b, RateLimits{PerIP: 0.001, IPBurst: 1, MaxTracked: 100})
	rc2, err := gethrpc.Dial("ws" + strings.TrimPrefix(ts2.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	if err := rc2.BatchCall(calls); err != nil {
		t.Fatal(err)
	}
	if calls[0].Error != nil {
		t.Fatalf("first call: %v", calls[0].Error)
	}
	wantCode(t, calls[1].Error, CodeLimitExceeded, "IP 127.0.0.1")
}

func TestRateLimitsOff(t *testing.T) {
	b := newTestBackend(t)
	ts := serve(t, b, RateLimits{})
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	key := devKey(t, 0)
	for n := uint64(0); n < 200; n++ {
		if err := sendRaw(t, rc, signedTransfer(t, key, n)); err != nil {
			t.Fatalf("limits off, nonce %d: %v", n, err)
		}
	}
}

// A client over its IP limit is refused before its signatures are
// recovered: the limit bounds the recoveries it can make the node do,
// one call at a time or in batches.
func TestIPChargedBeforeRecovery(t *testing.T) {
	b := newTestBackend(t)
	ts := serve(t, b, RateLimits{PerIP: 0.001, IPBurst: 3, MaxTracked: 100})
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Fresh keys: tier 0, refused by the node once recovered.
	fresh := func() *types.Transaction {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		return signedTransfer(t, k, 0)
	}
	start := b.senders.Recovered()
	for i := range 10 {
		err := sendRaw(t, rc, fresh())
		if i < 3 {
			wantCode(t, err, CodeServerError, "not KYC-verified")
		} else {
			wantCode(t, err, CodeLimitExceeded, "rate limit exceeded for IP 127.0.0.1")
		}
	}
	if got := b.senders.Recovered() - start; got != 3 {
		t.Fatalf("%d signatures recovered for 10 single calls within an IP burst of 3", got)
	}
	var batch []*types.Transaction
	for range 50 {
		batch = append(batch, fresh())
	}
	for i, r := range postBatch(t, ts.URL, batch) {
		if r.Error == nil || r.Error.Code != CodeLimitExceeded || !strings.Contains(r.Error.Message, "IP 127.0.0.1") {
			t.Fatalf("batch call %d: %+v", i, r.Error)
		}
	}
	if got := b.senders.Recovered() - start; got != 3 {
		t.Fatalf("%d signatures recovered after a batch of 50 over the IP limit, want still 3", got)
	}
	// Another client address has its own bucket: its transfer is admitted
	// while the first is over its limit.
	d := dialerFrom("127.0.20.2")
	other, err := gethrpc.DialOptions(context.Background(), ts.URL, gethrpc.WithHTTPClient(&http.Client{Transport: &http.Transport{DialContext: d.DialContext}}))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := sendRaw(t, other, signedTransfer(t, devKey(t, 0), 0)); err != nil {
		t.Fatalf("another client while the first is over its IP limit: %v", err)
	}
	wantCode(t, sendRaw(t, rc, fresh()), CodeLimitExceeded, "rate limit exceeded for IP 127.0.0.1")
}

// A refused transaction's sender does not stay in the sender cache
// (whatever refused it: a rate limit, the tier, the nonce, the balance),
// while an admitted one's stays for the block that applies it, and a
// refused duplicate of a pending transaction leaves the pending one's.
func TestRefusedSendersNotCached(t *testing.T) {
	b := newTestBackend(t)
	ts := serve(t, b, RateLimits{PerAccount: 0.001, AccountBurst: 1, MaxTracked: 100})
	rc, err := gethrpc.Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	fresh, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	to := common.Address{0xbe, 0xef}
	tooMuch, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Value: new(big.Int).Lsh(big.NewInt(1), 200), Gas: 21000}), id, devKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	admitted := signedTransfer(t, devKey(t, 0), 0)
	if err := sendRaw(t, rc, admitted); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tx   *types.Transaction
		code int
		msg  string
	}{
		{"rate limit", signedTransfer(t, devKey(t, 0), 1), CodeLimitExceeded, "rate limit exceeded for account"},
		{"tier 0", signedTransfer(t, fresh, 0), CodeServerError, "not KYC-verified"},
		{"nonce gap", signedTransfer(t, devKey(t, 1), 1<<20), CodeServerError, "nonce"},
		{"funds", tooMuch, CodeServerError, "insufficient funds"},
	} {
		wantCode(t, sendRaw(t, rc, c.tx), c.code, c.msg)
		if b.senders.Contains(c.tx.Hash()) {
			t.Errorf("%s: the refused transaction's sender stayed in the cache", c.name)
		}
	}
	wantCode(t, sendRaw(t, rc, admitted), CodeLimitExceeded, "rate limit exceeded for account") // a duplicate, refused
	if !b.senders.Contains(admitted.Hash()) {
		t.Fatal("the pending transaction's sender was dropped by a refused duplicate")
	}

	// In a batch: the same for each item.
	ok := signedTransfer(t, devKey(t, 3), 0)
	refused := []*types.Transaction{signedTransfer(t, devKey(t, 3), 1), signedTransfer(t, devKey(t, 4), 1<<20)}
	replies := postBatch(t, ts.URL, append([]*types.Transaction{ok}, refused...))
	if replies[0].Error != nil || replies[1].Error == nil || replies[2].Error == nil {
		t.Fatalf("batch replies %+v", replies)
	}
	if !b.senders.Contains(ok.Hash()) {
		t.Fatal("the admitted batch item's sender is not cached")
	}
	for i, tx := range refused {
		if b.senders.Contains(tx.Hash()) {
			t.Errorf("refused batch item %d: sender cached", i+1)
		}
	}
}
