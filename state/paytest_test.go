package state

import (
	"bytes"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
)

// payChain runs blocks of unsigned transactions through Execute (the
// function every node and the audit run, with its end-of-block work and
// its conservation check) on the dev genesis with payment-trust rules,
// one transaction per block at a block time the test sets.
type payChain struct {
	t      *testing.T
	base   Reader
	g      *genesis.Genesis
	number uint64
	timeMs uint64
	nonces map[common.Address]uint64
	// last is the last block's result.
	last *Result
}

const (
	testHoldSeconds     = 3600
	testKeyDelaySeconds = 7200
	testResponseSeconds = 86_400
	testDisputeWindow   = 30 * 86_400
)

func newPayChain(t *testing.T) *payChain {
	t.Helper()
	g := genesis.Dev()
	g.Payments = &genesis.Payments{HoldSeconds: testHoldSeconds, KeyChangeDelaySeconds: testKeyDelaySeconds, DisputeResponseSeconds: testResponseSeconds}
	g.Assets[1].DisputeWindowSeconds = testDisputeWindow // HKD takes disputes; CNY does not
	_, o, err := GenesisBlock(g)
	if err != nil {
		t.Fatal(err)
	}
	return &payChain{t: t, base: o, g: g, timeMs: g.TimestampMs + 1000, nonces: map[common.Address]uint64{}}
}

func devAddr(t *testing.T, i uint32) common.Address {
	t.Helper()
	a, err := genesis.DevAddress(i)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// exec runs one block holding one transaction of from at c.timeMs and
// returns its receipt and failure reason ("" on success).
func (c *payChain) exec(from, to common.Address, value *big.Int, data []byte) (*types.Receipt, string) {
	c.t.Helper()
	gas := chain.GasOf(to)
	tx := types.NewTx(&types.DynamicFeeTx{ChainID: big.NewInt(int64(c.g.ChainID)), Nonce: c.nonces[from], To: &to, Value: value, Gas: gas, Data: data})
	c.number++
	res, err := Execute(c.base, BlockContext{Number: c.number, TimeMs: c.timeMs}, []*types.Transaction{tx}, []common.Address{from})
	if err != nil {
		c.t.Fatalf("block %d: %v", c.number, err)
	}
	c.nonces[from]++
	c.base, c.last = res.Writes, res
	c.timeMs += 1000
	reason := ""
	if len(res.Reasons) > 0 {
		reason = res.Reasons[0].Reason
	}
	return res.Receipts[0], reason
}

// empty runs a block with no transaction at block time ms.
func (c *payChain) empty(ms uint64) {
	c.t.Helper()
	c.timeMs = ms
	c.number++
	res, err := Execute(c.base, BlockContext{Number: c.number, TimeMs: c.timeMs}, nil, nil)
	if err != nil {
		c.t.Fatalf("block %d: %v", c.number, err)
	}
	c.base, c.last = res.Writes, res
	c.timeMs++
}

func (c *payChain) call(from, to common.Address, a *abi.ABI, method string, args ...any) (*types.Receipt, string) {
	c.t.Helper()
	data, err := a.Pack(method, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.exec(from, to, new(big.Int), data)
}

// ok runs a call that must succeed.
func (c *payChain) ok(from, to common.Address, a *abi.ABI, method string, args ...any) *types.Receipt {
	c.t.Helper()
	r, reason := c.call(from, to, a, method, args...)
	if r.Status != StatusSuccess {
		c.t.Fatalf("%s by %s: %s", method, from, reason)
	}
	return r
}

// refused runs a call that must fail with a reason containing want and
// write nothing but its sender's nonce (and the expiry sweep's cursor,
// which the end of every block moves while payments are held).
func (c *payChain) refused(want string, from, to common.Address, a *abi.ABI, method string, args ...any) {
	c.t.Helper()
	r, reason := c.call(from, to, a, method, args...)
	if r.Status != StatusFailed {
		c.t.Fatalf("%s by %s succeeded, want refused with %q", method, from, want)
	}
	if !strings.Contains(reason, want) {
		c.t.Fatalf("%s by %s refused with %q, want %q", method, from, reason, want)
	}
	for k := range c.last.Writes.writes {
		if !bytes.Equal([]byte(k), nonceKey(from)) && k != string(keyHeldCursor) {
			c.t.Fatalf("%s refused but wrote state key %x", method, k)
		}
	}
}

func (c *payChain) overlay() *Overlay { return NewOverlay(c.base) }

func (c *payChain) balance(asset uint32, a common.Address) *big.Int {
	c.t.Helper()
	b, err := c.overlay().Balance(asset, a)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

func (c *payChain) escrow(asset uint32) *big.Int {
	c.t.Helper()
	s, err := c.overlay().Supply(asset)
	if err != nil {
		c.t.Fatal(err)
	}
	return s.Escrow
}

func (c *payChain) held(id uint64) HeldPayment {
	c.t.Helper()
	p, ok, err := c.overlay().HeldPayment(id)
	if err != nil || !ok {
		c.t.Fatalf("held payment %d: found %v, %v", id, ok, err)
	}
	return p
}

func (c *payChain) dispute(id uint64) Dispute {
	c.t.Helper()
	d, ok, err := c.overlay().Dispute(id)
	if err != nil || !ok {
		c.t.Fatalf("dispute %d: found %v, %v", id, ok, err)
	}
	return d
}

// hasEvent reports whether r has a log of contract's event.
func hasEvent(r *types.Receipt, contract common.Address, ev abi.Event) bool {
	for _, l := range r.Logs {
		if l.Address == contract && len(l.Topics) > 0 && l.Topics[0] == ev.ID {
			return true
		}
	}
	return false
}
