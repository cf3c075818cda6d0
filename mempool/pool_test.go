package mempool

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

var chainID = big.NewInt(1337)

// fakeState is an in-memory applied state; the pool only reads it.
type fakeState struct {
	mu      sync.Mutex
	nonces  map[common.Address]uint64
	bals    map[common.Address]*big.Int
	applied map[common.Hash]bool
	// unverified accounts are at tier 0.
	unverified map[common.Address]bool
	// due: a held payment is due to expire (HeldDue).
	due bool
}

func newFakeState() *fakeState {
	return &fakeState{nonces: map[common.Address]uint64{}, bals: map[common.Address]*big.Int{}, applied: map[common.Hash]bool{}, unverified: map[common.Address]bool{}}
}

func (s *fakeState) Nonce(a common.Address) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nonces[a], nil
}

func (s *fakeState) Balance(_ uint32, a common.Address) (*big.Int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.bals[a]; b != nil {
		return new(big.Int).Set(b), nil
	}
	return new(big.Int), nil
}

// Account reports every account at tier 1 except those in unverified.
func (s *fakeState) Account(a common.Address) (state.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unverified[a] {
		return state.Account{}, nil
	}
	return state.Account{Tier: 1}, nil
}

func (s *fakeState) Rules() (*state.Rules, error) { return state.CompileRules(&genesis.Dev().Rules) }

func (s *fakeState) HeldDue() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.due, nil
}

func (s *fakeState) HasTx(h common.Hash) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[h], nil
}

type fixture struct {
	t    *testing.T
	st   *fakeState
	pool *Pool
	keys []*crypto.PrivateKey
}

func newFixture(t *testing.T, cfg Config) *fixture {
	f := &fixture{t: t, st: newFakeState()}
	for i := uint32(0); i < 3; i++ {
		k, err := crypto.KeyFromMnemonic(crypto.TestMnemonic, "", i)
		if err != nil {
			t.Fatal(err)
		}
		f.keys = append(f.keys, k)
		f.st.bals[k.Address()] = big.NewInt(1_000_000)
	}
	f.pool = New(cfg, f.st, chain.NewSenderCache(chain.NewSigner(chainID), 1024))
	return f
}

func (f *fixture) tx(key int, nonce uint64, value int64) *types.Transaction {
	to := common.Address{9}
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonce, To: &to, Value: big.NewInt(value), Gas: 21000}), chainID, f.keys[key])
	if err != nil {
		f.t.Fatal(err)
	}
	return tx
}

func (f *fixture) add(tx *types.Transaction) error {
	_, err := f.pool.Add(tx)
	return err
}

func nonces(ps []Pending) []uint64 {
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.Tx.Nonce()
	}
	return out
}

func TestNonceOrderAndGaps(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	for _, n := range []uint64{2, 0, 3} {
		if err := f.add(f.tx(0, n, 1)); err != nil {
			t.Fatal(err)
		}
	}
	got := f.pool.Take(10)
	if len(got) != 1 || got[0].Tx.Nonce() != 0 {
		t.Fatalf("took %v, want only nonce 0 (1 is missing)", nonces(got))
	}
	if n, _ := f.pool.PendingNonce(f.keys[0].Address()); n != 1 {
		t.Fatalf("pending nonce %d, want 1", n)
	}
	if err := f.add(f.tx(0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	got = f.pool.Take(10)
	if len(got) != 3 || got[0].Tx.Nonce() != 1 || got[2].Tx.Nonce() != 3 {
		t.Fatalf("took %v, want 1 2 3", nonces(got))
	}
	if n, _ := f.pool.PendingNonce(f.keys[0].Address()); n != 4 {
		t.Fatalf("pending nonce %d, want 4 (in-flight count)", n)
	}
}

func TestRoundRobin(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	for n := uint64(0); n < 3; n++ {
		f.add(f.tx(0, n, 1))
		f.add(f.tx(1, n, 1))
	}
	got := f.pool.Take(4)
	var senders []common.Address
	for _, p := range got {
		senders = append(senders, p.From)
	}
	if len(got) != 4 || senders[0] == senders[1] || senders[1] == senders[2] {
		t.Fatalf("not round robin: %v", senders)
	}
}

func TestAdmissionErrors(t *testing.T) {
	f := newFixture(t, Config{MaxPerAccount: 4, MaxTotal: 6})
	f.st.nonces[f.keys[0].Address()] = 5
	applied := f.tx(1, 0, 1)
	f.st.applied[applied.Hash()] = true
	known := f.tx(2, 0, 1)
	if err := f.add(known); err != nil {
		t.Fatal(err)
	}
	to := common.Address{1}
	withData, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, To: &to, Gas: 21000, Data: []byte{1}}), chainID, f.keys[2])
	sys := chain.AssetAddress(1)
	call := func(gas uint64, value int64, data []byte, to common.Address) *types.Transaction {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, To: &to, Gas: gas, Value: big.NewInt(value), Data: data}), chainID, f.keys[2])
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	transfer, err := chain.AssetABI.Pack("transfer", common.Address{7}, big.NewInt(5))
	if err != nil {
		t.Fatal(err)
	}
	type call3 struct {
		Target       common.Address
		AllowFailure bool
		CallData     []byte
	}
	aggregate3, err := chain.Multicall3ABI.Pack("aggregate3", []call3{{sys, true, transfer}})
	if err != nil {
		t.Fatal(err)
	}
	unverified, _ := crypto.KeyFromMnemonic(crypto.TestMnemonic, "", 700)
	f.st.unverified[unverified.Address()] = true
	f.st.bals[unverified.Address()] = big.NewInt(100)
	fromTier0, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, To: &to, Gas: 21000, Value: big.NewInt(1)}), chainID, unverified)
	tipAboveCap, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 1, To: &to, Gas: 21000, Value: big.NewInt(1), GasTipCap: big.NewInt(2), GasFeeCap: big.NewInt(1)}), chainID, f.keys[2])
	wrongChain, _ := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(1), To: &to, Gas: 21000}), big.NewInt(1), f.keys[2])
	cases := []struct {
		name string
		tx   *types.Transaction
		want error
	}{
		{"nonce too low", f.tx(0, 4, 1), ErrNonceTooLow},
		{"gap too large", f.tx(0, 9, 1), ErrNonceGap},
		{"already applied", applied, ErrAlreadyApplied},
		{"known", known, ErrKnown},
		{"same nonce", f.tx(2, 0, 2), ErrNonceTaken},
		{"unfunded", f.tx(2, 1, 1_000_000), ErrInsufficientFunds},
		{"calldata", withData, ErrDataNotAllowed},
		{"to Multicall3", call(chain.GasPerSystemCall, 0, aggregate3, chain.MulticallAddress), ErrMulticallReadOnly},
		{"value to Multicall3", call(21000, 1, nil, chain.MulticallAddress), ErrMulticallReadOnly},
		{"transfer gas", call(20999, 1, nil, to), ErrIntrinsicGas},
		{"system call gas", call(chain.GasPerSystemCall-1, 0, transfer, sys), ErrIntrinsicGas},
		{"system call value", call(chain.GasPerSystemCall, 1, transfer, sys), ErrInvalidCall},
		{"unknown selector", call(chain.GasPerSystemCall, 0, []byte{1, 2, 3, 4}, sys), ErrInvalidCall},
		{"truncated args", call(chain.GasPerSystemCall, 0, transfer[:40], sys), ErrInvalidCall},
		{"no such asset", call(chain.GasPerSystemCall, 0, transfer, chain.AssetAddress(9)), ErrInvalidCall},
		{"tier 0 sender", fromTier0, ErrNotVerified},
		{"tip above fee cap", tipAboveCap, ErrTipAboveFeeCap},
		{"wrong chain", wrongChain, chain.ErrWrongChain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := f.add(c.tx); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
	// Limits: 4 per account, 6 in total.
	for n := uint64(1); n < 4; n++ {
		if err := f.add(f.tx(2, n, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.add(f.tx(2, 4, 1)); !errors.Is(err, ErrAccountFull) && !errors.Is(err, ErrNonceGap) {
		t.Fatalf("5th tx of an account: %v", err)
	}
	f.add(f.tx(1, 0+1, 1)) // gapped (nonce 1 while 0 is applied elsewhere): still counts
	f.add(f.tx(1, 2, 1))
	if err := f.add(f.tx(1, 3, 1)); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("pool over total: %v", err)
	}
	if q, _ := f.pool.Stats(); q != 6 {
		t.Fatalf("queued %d, want 6", q)
	}
}

func TestAppliedAndReturn(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	a := f.keys[0].Address()
	for n := uint64(0); n < 4; n++ {
		f.add(f.tx(0, n, 10))
	}
	first := f.pool.Take(2)
	// The block holding the first two is skipped: they come back in order.
	f.pool.Return(first)
	again := f.pool.Take(10)
	if got := nonces(again); len(got) != 4 || got[0] != 0 || got[3] != 3 {
		t.Fatalf("after return took %v", got)
	}
	// Two are applied; the state moves; the other two are returned.
	f.st.nonces[a] = 2
	f.pool.Applied([]*types.Transaction{again[0].Tx, again[1].Tx}, []common.Address{a, a})
	f.pool.Return(again[2:])
	if n, _ := f.pool.PendingNonce(a); n != 4 {
		t.Fatalf("pending nonce %d, want 4", n)
	}
	if _, _, ok := f.pool.Get(again[0].Tx.Hash()); ok {
		t.Fatal("applied tx still pending")
	}
	if err := f.add(again[0].Tx); !errors.Is(err, ErrNonceTooLow) {
		t.Fatalf("re-adding an applied tx: %v", err)
	}
	// A block from elsewhere applies nonce 2 with a different tx: the pool's
	// nonce-2 tx is stale and dropped, nonce 3 becomes next.
	other := f.tx(0, 2, 99)
	f.pool.Applied([]*types.Transaction{other}, []common.Address{a})
	rest := f.pool.Take(10)
	if got := nonces(rest); len(got) != 1 || got[0] != 3 {
		t.Fatalf("took %v, want [3]", got)
	}
	f.pool.Applied([]*types.Transaction{rest[0].Tx}, []common.Address{a})
	if q, inflight := f.pool.Stats(); q != 0 || inflight != 0 {
		t.Fatalf("stats %d %d, want empty", q, inflight)
	}
}

func TestDiscard(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	f.add(f.tx(0, 0, 500_000))
	got := f.pool.Take(1)
	f.pool.Discard(got)
	if q, inflight := f.pool.Stats(); q != 0 || inflight != 0 {
		t.Fatalf("stats %d %d after discard", q, inflight)
	}
	// The outflow was released: a tx needing the whole balance is admitted.
	f.st.nonces[f.keys[0].Address()] = 1
	if err := f.add(f.tx(0, 1, 1_000_000)); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAdd(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	var wg sync.WaitGroup
	for k := 0; k < 3; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for n := uint64(0); n < 100; n++ {
				if err := f.add(f.tx(k, n, 1)); err != nil {
					t.Error(err)
				}
			}
		}(k)
	}
	wg.Wait()
	if got := f.pool.Take(1000); len(got) != 300 {
		t.Fatalf("took %d", len(got))
	}
}

func TestResyncAfterSnapshot(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	a := f.keys[0].Address()
	for n := uint64(0); n < 5; n++ {
		f.add(f.tx(0, n, 1))
	}
	// An installed snapshot already holds nonces 0..2 of this account.
	f.st.nonces[a] = 3
	if err := f.pool.Resync(); err != nil {
		t.Fatal(err)
	}
	got := f.pool.Take(10)
	if n := nonces(got); len(n) != 2 || n[0] != 3 || n[1] != 4 {
		t.Fatalf("took %v after resync, want [3 4]", n)
	}
	if q, inflight := f.pool.Stats(); q != 0 || inflight != 2 {
		t.Fatalf("stats %d %d", q, inflight)
	}
}

// TestAppliedElsewhereThenTake: a follower's pool holds a forwarded
// transaction that another node's block applies; the emptied account must
// leave the ready queue, so a later Take (after this node becomes leader)
// neither crashes nor keeps stale entries.
func TestAppliedElsewhereThenTake(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	a := f.keys[0].Address()
	tx := f.tx(0, 0, 1)
	f.add(tx)
	f.st.nonces[a] = 1
	f.pool.Applied([]*types.Transaction{tx}, []common.Address{a})
	if f.pool.HasReady() {
		t.Fatal("emptied account still in the ready queue")
	}
	if got := f.pool.Take(10); len(got) != 0 {
		t.Fatalf("took %v", nonces(got))
	}
	// The account comes back and is served once.
	f.add(f.tx(0, 1, 1))
	if got := f.pool.Take(10); len(got) != 1 {
		t.Fatalf("took %d", len(got))
	}
}

// TestGapVisibleRefusedAndExpired: the leader that admitted nonces 0..2
// of a sender is lost, and the sender's next transactions (3, 4, ...)
// reach the new leader, whose state says nonce 0 comes next. They wait
// behind the gap: Status names the missing nonce from the first one on.
// Within GapGrace more are admitted (a sender's transactions may arrive
// out of order); after it a transaction behind the gap is refused with an
// error naming nonce 0, while nonce 0 itself is still admitted. A gap
// that stays open past GapExpiry empties: ExpireGaps drops the waiting
// transactions, so the sender re-sends from nonce 0. A relayed
// transaction is never refused for the gap.
func TestGapVisibleRefusedAndExpired(t *testing.T) {
	f := newFixture(t, Config{GapGrace: 10 * time.Second, GapExpiry: time.Minute})
	now := time.Unix(1_700_000_000, 0)
	f.pool.now = func() time.Time { return now }
	a := f.keys[0].Address()

	st, err := f.pool.Status(a)
	if err != nil || st.Missing != nil || st.Next != 0 || st.PendingNonce != 0 {
		t.Fatalf("empty account status %+v, %v", st, err)
	}
	for _, n := range []uint64{3, 4} {
		if err := f.add(f.tx(0, n, 1)); err != nil {
			t.Fatalf("nonce %d behind a new gap: %v", n, err)
		}
	}
	st, _ = f.pool.Status(a)
	if st.Missing == nil || *st.Missing != 0 || !st.GapSince.Equal(now) || !slices.Equal(st.Queued, []uint64{3, 4}) || st.PendingNonce != 0 {
		t.Fatalf("status behind the gap: %+v, want missing 0 since now, queued 3 4", st)
	}
	if got := f.pool.Take(10); len(got) != 0 {
		t.Fatalf("took %v from behind a gap", nonces(got))
	}

	now = now.Add(9 * time.Second)
	if err := f.add(f.tx(0, 5, 1)); err != nil {
		t.Fatalf("nonce 5 within the grace: %v", err)
	}
	now = now.Add(2 * time.Second) // 11 s: past the grace
	err = f.add(f.tx(0, 6, 1))
	if !errors.Is(err, ErrMissingNonce) || !strings.Contains(err.Error(), "missing nonce 0:") || !strings.Contains(err.Error(), "send nonce 0 first") {
		t.Fatalf("nonce 6 behind an 11 s old gap: %v, want a refusal naming nonce 0", err)
	}
	// What another node already acknowledged (the leader's replication,
	// a re-send to a new leader) is admitted behind the same gap: it is
	// what fills gaps, in any order.
	if _, err := f.pool.AddRelayed(f.tx(0, 7, 1)); err != nil {
		t.Fatalf("relayed nonce 7 behind the stale gap: %v", err)
	}
	if f.pool.ExpireGaps() != nil {
		t.Fatal("expired a gap younger than GapExpiry")
	}
	// Another sender is not affected.
	if err := f.add(f.tx(1, 0, 1)); err != nil {
		t.Fatal(err)
	}

	// Past the expiry, the waiting transactions leave.
	now = now.Add(50 * time.Second)
	gone := f.pool.ExpireGaps()
	if len(gone) != 4 {
		t.Fatalf("expired %d transactions, want 4 (nonces 3, 4, 5, 7)", len(gone))
	}
	st, _ = f.pool.Status(a)
	if st.Missing != nil || len(st.Queued) != 0 || st.PendingNonce != 0 {
		t.Fatalf("status after expiry %+v", st)
	}
	if q, _ := f.pool.Stats(); q != 1 {
		t.Fatalf("%d queued after expiry, want the other sender's 1", q)
	}

	// The sender re-sends from nonce 0; filling the gap closes it.
	for n := uint64(0); n < 3; n++ {
		if err := f.add(f.tx(0, n, 1)); err != nil {
			t.Fatalf("re-sent nonce %d: %v", n, err)
		}
	}
	if err := f.add(f.tx(0, 3, 1)); err != nil {
		t.Fatal(err)
	}
	st, _ = f.pool.Status(a)
	if st.Missing != nil || st.PendingNonce != 4 {
		t.Fatalf("status after re-sending %+v, want no gap, pending nonce 4", st)
	}
}

// TestGapFilledBeforeGraceIsNoGap: nonce 1 arrives before nonce 0 (two
// connections); once 0 arrives there is no gap and later nonces are
// admitted however long the account has had transactions pending.
func TestGapFilledBeforeGraceIsNoGap(t *testing.T) {
	f := newFixture(t, Config{GapGrace: time.Second, GapExpiry: 2 * time.Second})
	now := time.Unix(1_700_000_000, 0)
	f.pool.now = func() time.Time { return now }
	if err := f.add(f.tx(0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.add(f.tx(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if err := f.add(f.tx(0, 2, 1)); err != nil {
		t.Fatalf("nonce 2 with no gap: %v", err)
	}
	if gone := f.pool.ExpireGaps(); gone != nil {
		t.Fatalf("expired %d transactions without a gap", len(gone))
	}
	// Taken into a block: the next nonce is in flight, nothing waits.
	if got := f.pool.Take(10); len(got) != 3 {
		t.Fatalf("took %v", nonces(got))
	}
	if err := f.add(f.tx(0, 4, 1)); err != nil {
		t.Fatal(err)
	}
	st, _ := f.pool.Status(f.keys[0].Address())
	if st.Missing == nil || *st.Missing != 3 || st.InFlight != 3 {
		t.Fatalf("status %+v, want nonce 3 missing behind 3 in flight", st)
	}
}

// TestAllInNonceOrder: the pool hands its transactions to a new leader
// each sender's in nonce order, whatever order they arrived in.
func TestAllInNonceOrder(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	for _, n := range []uint64{3, 1, 0, 2} {
		if err := f.add(f.tx(0, n, 1)); err != nil {
			t.Fatal(err)
		}
		if err := f.add(f.tx(1, n, 1)); err != nil {
			t.Fatal(err)
		}
	}
	last := map[common.Address]int64{}
	for _, tx := range f.pool.All() {
		from, _ := f.pool.senders.Sender(tx)
		if prev, ok := last[from]; ok && int64(tx.Nonce()) != prev+1 {
			t.Fatalf("sender %s: nonce %d after %d", from, tx.Nonce(), prev)
		}
		last[from] = int64(tx.Nonce())
	}
	if len(last) != 2 {
		t.Fatalf("%d senders", len(last))
	}
}

// TestAllInAdmissionOrder: the senders come in the order the pool first
// admitted one of their pending transactions, every time (a new leader's
// blocks then keep the order this node served its clients in; with Go's
// map order they differed from one call to the next), each sender's
// transactions together and in nonce order.
func TestAllInAdmissionOrder(t *testing.T) {
	f := newFixture(t, DefaultConfig)
	for i := uint32(len(f.keys)); i < 12; i++ {
		k, err := crypto.KeyFromMnemonic(crypto.TestMnemonic, "", i)
		if err != nil {
			t.Fatal(err)
		}
		f.keys = append(f.keys, k)
		f.st.bals[k.Address()] = big.NewInt(1_000_000)
	}
	// Senders first admitted in this order; later nonces of earlier
	// senders arrive in between, and one sender's nonce 1 comes before
	// its nonce 0.
	order := []int{7, 2, 11, 0, 5, 9, 3, 10, 1, 8, 6, 4}
	for i, k := range order {
		if k == 9 {
			if err := f.add(f.tx(k, 1, 1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.add(f.tx(k, 0, 1)); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if err := f.add(f.tx(order[i-1], 1, 1)); err != nil && order[i-1] != 9 {
				t.Fatal(err)
			}
		}
	}
	var want []string
	for _, k := range order {
		want = append(want, fmt.Sprintf("%s/0", f.keys[k].Address()))
		if k != order[len(order)-1] {
			want = append(want, fmt.Sprintf("%s/1", f.keys[k].Address()))
		}
	}
	for call := 0; call < 20; call++ {
		var got []string
		for _, tx := range f.pool.All() {
			from, _ := f.pool.senders.Sender(tx)
			got = append(got, fmt.Sprintf("%s/%d", from, tx.Nonce()))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("call %d: All gives\n%q\nwant\n%q", call, got, want)
		}
	}
}

// TestExpirePaymentsAdmission: expirePayments is the one call admission
// takes from an unverified (tier 0) sender, a node's keeper account, and
// only while a held payment is due; from a verified sender too, it is
// refused while none is (it could only revert). Other calls of the
// unverified sender stay refused.
func TestExpirePaymentsAdmission(t *testing.T) {
	f := newFixture(t, Config{MaxPerAccount: 4, MaxTotal: 16})
	keeper, _ := crypto.KeyFromMnemonic(crypto.TestMnemonic, "", 701)
	f.st.unverified[keeper.Address()] = true
	expire, err := chain.ConfirmationsABI.Pack("expirePayments")
	if err != nil {
		t.Fatal(err)
	}
	cancel, _ := chain.ConfirmationsABI.Pack("cancelPayment", big.NewInt(1))
	to := chain.ConfirmationsAddress
	sign := func(key *crypto.PrivateKey, nonce uint64, data []byte) *types.Transaction {
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonce, To: &to, Gas: chain.GasPerSystemCall, Data: data}), chainID, key)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	for _, c := range []struct {
		name string
		due  bool
		tx   *types.Transaction
		want error
	}{
		{"unverified, nothing due", false, sign(keeper, 0, expire), ErrInvalidCall},
		{"verified, nothing due", false, sign(f.keys[1], 0, expire), ErrInvalidCall},
		{"unverified, another call", true, sign(keeper, 0, cancel), ErrNotVerified},
		{"unverified, due", true, sign(keeper, 0, expire), nil},
		{"verified, due", true, sign(f.keys[1], 0, expire), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.st.mu.Lock()
			f.st.due = c.due
			f.st.mu.Unlock()
			if err := f.add(c.tx); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
	// A relayed copy (a validator holding the leader's admitted call) is
	// taken whether this pool's head has reached the due payment or not.
	f.st.mu.Lock()
	f.st.due = false
	f.st.mu.Unlock()
	if _, err := f.pool.AddRelayed(sign(keeper, 1, expire)); err != nil {
		t.Fatalf("relayed expirePayments: %v", err)
	}
}

// appliedMeanwhile is a state in which the block applying tx lands right
// after the pool's first HasTx for it: the account's nonce then says too
// low, and the transaction is in fact applied.
type appliedMeanwhile struct {
	*fakeState
	tx   common.Hash
	from common.Address
	once sync.Once
}

func (s *appliedMeanwhile) HasTx(h common.Hash) (bool, error) {
	applied, err := s.fakeState.HasTx(h)
	if h == s.tx {
		s.once.Do(func() {
			s.mu.Lock()
			s.applied[h] = true
			s.nonces[s.from]++
			s.mu.Unlock()
		})
	}
	return applied, err
}

// TestAddAppliedMeanwhile: a transaction applied between the pool's
// check of applied hashes and its read of the sender's nonce is refused
// as already applied, not as a nonce too low.
func TestAddAppliedMeanwhile(t *testing.T) {
	f := newFixture(t, Config{MaxPerAccount: 16, MaxTotal: 1024})
	tx := f.tx(0, 0, 1)
	st := &appliedMeanwhile{fakeState: f.st, tx: tx.Hash(), from: f.keys[0].Address()}
	pool := New(Config{MaxPerAccount: 16, MaxTotal: 1024}, st, chain.NewSenderCache(chain.NewSigner(chainID), 1024))
	if _, err := pool.Add(tx); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("Add of a transaction applied meanwhile: %v, want ErrAlreadyApplied", err)
	}
}
