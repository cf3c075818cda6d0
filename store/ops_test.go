package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// This file tests every operation of the asset facades and the compliance
// contract through the real path: signed transactions, Build, ApplyBlock
// into Pebble, stored receipts. Each case checks the receipt status, the
// revert reason, eth_call's verdict, the exact state diff (balances, supply,
// nonces), the logs decoded with the published ABIs, the return value, and
// that replaying the signed transaction is refused.

// Dev accounts the cases use, as BIP44 indexes of the test mnemonic.
const (
	idAlice      = 0 // dev accounts 0..3: top tier, 10^30 CNY, 10^14 HKD
	idBob        = 1
	idCarol      = 2
	idDave       = 3
	idBankA      = genesis.DevBankAIndex // issues CNY
	idBankB      = genesis.DevBankBIndex // issues CNY and HKD
	idCompliance = genesis.DevComplianceIndex
	idBasic      = 510 // fresh; setups raise it to tier 1
	idFull       = 520 // fresh; setups raise it to tier 2
	idNew        = 530 // fresh, tier 0
)

const (
	assetCNY uint32 = state.NativeAsset
	assetHKD uint32 = 1
)

// Test keys, derived once per index (a derivation from the mnemonic costs ~10 ms).
var testKeys struct {
	sync.Mutex
	master *crypto.ExtendedKey
	keys   map[uint32]*crypto.PrivateKey
	addrs  map[uint32]common.Address // an address costs a scalar multiplication
	names  map[common.Address]string
}

var wellKnown = map[uint32]string{
	idAlice: "alice", idBob: "bob", idCarol: "carol", idDave: "dave",
	idBankA: "bankA", idBankB: "bankB", idCompliance: "compliance",
	idBasic: "basic", idFull: "full", idNew: "new",
}

// keyOf returns dev key i: genesis.DevKey(i), cached.
func keyOf(i uint32) *crypto.PrivateKey {
	testKeys.Lock()
	defer testKeys.Unlock()
	if k, ok := testKeys.keys[i]; ok {
		return k
	}
	if testKeys.master == nil {
		seed, err := crypto.MnemonicToSeed(crypto.TestMnemonic, "")
		if err != nil {
			panic(err)
		}
		if testKeys.master, err = crypto.NewMasterKey(seed); err != nil {
			panic(err)
		}
		testKeys.keys = map[uint32]*crypto.PrivateKey{}
		testKeys.addrs = map[uint32]common.Address{}
		testKeys.names = map[common.Address]string{}
	}
	child, err := testKeys.master.Derive(crypto.EthereumPath(i))
	if err != nil {
		panic(err)
	}
	k, err := child.PrivateKey()
	if err != nil {
		panic(err)
	}
	testKeys.keys[i] = k
	testKeys.addrs[i] = k.Address()
	name, ok := wellKnown[i]
	if !ok {
		name = fmt.Sprintf("acct%d", i)
	}
	testKeys.names[testKeys.addrs[i]] = name
	return k
}

// who returns the address of dev account i.
func who(i uint32) common.Address {
	keyOf(i)
	testKeys.Lock()
	defer testKeys.Unlock()
	return testKeys.addrs[i]
}

// nameOf names an address for failure messages.
func nameOf(a common.Address) string {
	testKeys.Lock()
	n, ok := testKeys.names[a]
	testKeys.Unlock()
	switch id, isAsset := chain.AssetID(a); {
	case ok:
		return n
	case a == (common.Address{}):
		return "0x0"
	case a == chain.ComplianceAddress:
		return "Compliance"
	case a == chain.GovernanceAddress:
		return "Governance"
	case a == chain.ExchangeAddress:
		return "Exchange"
	case isAsset && id == assetCNY:
		return "CNY-facade"
	case isAsset && id == assetHKD:
		return "HKD-facade"
	}
	return a.Hex()
}

func TestKeyCacheIsDevKey(t *testing.T) {
	for _, i := range []uint32{0, 19, idBankA, idCompliance, 777} {
		want, err := genesis.DevKey(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := who(i); got != want.Address() {
			t.Fatalf("cached key %d is %s, genesis.DevKey gives %s", i, got, want.Address())
		}
	}
}

// Amounts.
var weiPerCNY = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// cent is 0.01 CNY, its minor unit (ISO 4217: 2 decimal places).
var cent = new(big.Int).Exp(big.NewInt(10), big.NewInt(16), nil)

func cny(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), weiPerCNY) }
func hkd(n int64) *big.Int { return big.NewInt(n * 100) }
func bn(n int64) *big.Int  { return big.NewInt(n) }
func plus(a *big.Int, d int64) *big.Int {
	return new(big.Int).Add(a, big.NewInt(d))
}
func neg(a *big.Int) *big.Int { return new(big.Int).Neg(a) }

// refNames names the references tests made, for failure messages.
var refNames sync.Map // [32]byte → string

// ref is a bytes32 reference (bank reference, order id, payout reference).
func ref(s string) [32]byte {
	r := [32]byte(crypto.Keccak256([]byte(s)))
	refNames.Store(r, s)
	return r
}

// opStep is one transaction of a test.
type opStep struct {
	from   uint32
	to     common.Address
	value  *big.Int
	data   []byte
	gas    uint64      // 0: 100,000
	method *abi.Method // the called operation; nil for value transfers and raw calldata
	desc   string
	fails  string // in setups: the step must fail with a reason containing this
}

func (s opStep) String() string { return s.desc }

// failing marks a setup step that must fail with reason.
func (s opStep) failing(reason string) opStep { s.fails = reason; return s }

func (s opStep) withGas(g uint64) opStep { s.gas = g; return s }

func valueTx(from uint32, to common.Address, v *big.Int) opStep {
	return opStep{from: from, to: to, value: v, desc: fmt.Sprintf("%s sends %s to %s", nameOf(who(from)), v, nameOf(to))}
}

func systemTx(a *abi.ABI, contract common.Address, from uint32, method string, args ...any) opStep {
	data, err := a.Pack(method, args...)
	if err != nil {
		panic(fmt.Sprintf("pack %s: %v", method, err)) // a bad table entry
	}
	m := a.Methods[method]
	return opStep{from: from, to: contract, value: new(big.Int), data: data, method: &m,
		desc: fmt.Sprintf("%s calls %s.%s(%s)", nameOf(who(from)), nameOf(contract), method, fmtVals(args))}
}

func assetTx(from, asset uint32, method string, args ...any) opStep {
	return systemTx(&chain.AssetABI, chain.AssetAddress(asset), from, method, args...)
}

func complianceTx(from uint32, method string, args ...any) opStep {
	return systemTx(&chain.ComplianceABI, chain.ComplianceAddress, from, method, args...)
}

func rawTx(from uint32, to common.Address, data []byte) opStep {
	return opStep{from: from, to: to, value: new(big.Int), data: data, desc: fmt.Sprintf("%s sends calldata %x to %s", nameOf(who(from)), data, nameOf(to))}
}

// Shorthands for common operations.
func txSetTier(i uint32, tier uint8) opStep {
	return complianceTx(idCompliance, "setKycTier", who(i), tier, "kyc review")
}
func txFreeze(i uint32) opStep { return complianceTx(idCompliance, "freeze", who(i), "court order") }
func txUnfreeze(i uint32) opStep {
	return complianceTx(idCompliance, "unfreeze", who(i), "case closed")
}
func txTransfer(from, asset, to uint32, amount *big.Int) opStep {
	return assetTx(from, asset, "transfer", who(to), amount)
}
func txMint(bank, asset, to uint32, amount *big.Int, bankRef string) opStep {
	return assetTx(bank, asset, "mint", who(to), amount, ref(bankRef))
}
func txPay(from, asset, to uint32, amount *big.Int, order string) opStep {
	return assetTx(from, asset, "transferWithReference", who(to), amount, ref(order))
}
func txRefund(merchant, asset uint32, order string, to uint32, amount *big.Int) opStep {
	return assetTx(merchant, asset, "refund", ref(order), who(to), amount)
}
func txApprove(owner, asset, spender uint32, amount *big.Int) opStep {
	return assetTx(owner, asset, "approve", who(spender), amount)
}
func txTransferFrom(spender, asset, owner, to uint32, amount *big.Int) opStep {
	return assetTx(spender, asset, "transferFrom", who(owner), who(to), amount)
}
func txWithdraw(holder, asset uint32, amount *big.Int) opStep {
	return assetTx(holder, asset, "requestWithdrawal", amount, ref("payout"))
}
func txClaim(bank, asset uint32, id int64, order string) opStep {
	return assetTx(bank, asset, "claimWithdrawal", bn(id), ref(order))
}
func txReturnW(bank, asset uint32, id int64, reason string) opStep {
	return assetTx(bank, asset, "returnWithdrawal", bn(id), reason)
}
func txReverse(bank, asset uint32, bankRef, reason string) opStep {
	return assetTx(bank, asset, "reverseMint", ref(bankRef), reason)
}
func txSettle(bank, asset uint32, id int64) opStep {
	return assetTx(bank, asset, "settleWithdrawal", bn(id))
}
func txRefundW(bank, asset uint32, id int64, reason string) opStep {
	return assetTx(bank, asset, "refundWithdrawal", bn(id), reason)
}
func txForce(caller, asset, from, to uint32, amount *big.Int, reason string) opStep {
	return assetTx(caller, asset, "forceTransfer", who(from), who(to), amount, reason)
}

// fundCNY and fundHKD move money from alice (top tier, rich) to i.
func fundCNY(i uint32, amount *big.Int) opStep { return valueTx(idAlice, who(i), amount) }
func fundHKD(i uint32, amount *big.Int) opStep { return txTransfer(idAlice, assetHKD, i, amount) }

// opHarness is a Pebble-backed state on the dev genesis that applies
// blocks of signed transactions the way a node does.
type opHarness struct {
	t       testing.TB
	db      *DB
	val     *crypto.PrivateKey
	senders *chain.SenderCache
	chainID *big.Int
	raftIdx uint64
	nonces  map[common.Address]uint64
	t0      uint64 // genesis time, ms
}

func newOpHarness(t testing.TB) *opHarness {
	t.Helper()
	return newOpHarnessOn(t, genesis.Dev())
}

// newOpHarnessOn is newOpHarness on genesis g (the dev keys still sign).
func newOpHarnessOn(t testing.TB, g *genesis.Genesis) *opHarness {
	t.Helper()
	db, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	chainID := g.ChainIDBig()
	return &opHarness{
		t: t, db: db, val: keyOf(genesis.DevValidatorIndex), chainID: chainID,
		senders: chain.NewSenderCache(chain.NewSigner(chainID), 4096),
		nonces:  map[common.Address]uint64{}, t0: g.TimestampMs,
	}
}

// sign signs s with the next nonce of its sender.
func (h *opHarness) sign(s opStep) *types.Transaction {
	h.t.Helper()
	k, from := keyOf(s.from), who(s.from)
	n, ok := h.nonces[from]
	if !ok {
		var err error
		if n, err = h.db.Nonce(from); err != nil {
			h.t.Fatal(err)
		}
	}
	h.nonces[from] = n + 1
	gas := s.gas
	if gas == 0 {
		gas = 100_000
	}
	value := s.value
	if value == nil {
		value = new(big.Int)
	}
	to := s.to
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{
		ChainID: h.chainID, Nonce: n, To: &to, Value: value, Gas: gas, Data: s.data,
		GasTipCap: new(big.Int), GasFeeCap: new(big.Int),
	}), h.chainID, k)
	if err != nil {
		h.t.Fatal(err)
	}
	return tx
}

// txResult is what one transaction of an applied block produced.
type txResult struct {
	step    opStep
	tx      *types.Transaction
	from    common.Address
	receipt *types.Receipt // as stored by ApplyBlock
	reason  string         // the revert reason; "" on success
	output  []byte
	blk     state.BlockContext
}

func (r txResult) ok() bool { return r.receipt.Status == state.StatusSuccess }

// blockTime is the time of the next block built at atMs after genesis (0:
// a second after the head), as Build chooses it.
func (h *opHarness) blockTime(atMs uint64) uint64 {
	head := h.db.Tip().Head
	now := head.TimeMs + 1000
	if atMs != 0 {
		now = h.t0 + atMs
	}
	return max(now, head.TimeMs+1)
}

// block signs steps, executes them on a scratch overlay to learn the revert
// reasons, builds the block with Build, applies it with ApplyBlock, checks
// that the builder, the applier and the scratch run agree, and checks
// conservation. atMs is the block time after genesis (0: a second after the
// head).
func (h *opHarness) block(atMs uint64, steps ...opStep) []txResult {
	h.t.Helper()
	txs := make([]*types.Transaction, len(steps))
	for i, s := range steps {
		txs[i] = h.sign(s)
	}
	froms, errs := h.senders.Senders(txs)
	for i, err := range errs {
		if err != nil {
			h.t.Fatalf("tx %d (%s): sender: %v", i, steps[i], err)
		}
	}
	tip := h.db.Tip()
	now := h.blockTime(atMs)
	blk := state.BlockContext{Number: tip.Head.Number + 1, TimeMs: now}
	rules, err := state.LoadRules(h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	scratch := state.NewOverlay(h.db)
	res := make([]txResult, len(steps))
	simLogs := make([][]*types.Log, len(steps))
	var cum uint64
	for i, tx := range txs {
		out, err := state.ExecuteTx(scratch, rules, blk, tx, froms[i], cum)
		if err != nil {
			h.t.Fatalf("block %d tx %d (%s) cannot be included: %v", blk.Number, i, steps[i], err)
		}
		cum = out.Receipt.CumulativeGasUsed
		res[i] = txResult{step: steps[i], tx: tx, from: froms[i], output: out.Output, blk: blk}
		if out.Reason != nil {
			res[i].reason = out.Reason.Error()
			if _, ok := state.IsRevert(out.Reason); !ok {
				h.t.Fatalf("tx %d (%s): reason %v is not a *Revert", i, steps[i], out.Reason)
			}
		}
		simLogs[i] = out.Receipt.Logs
	}
	if err := state.ApplyScheduled(scratch, rules, blk); err != nil { // as Execute does at the end of a block
		h.t.Fatal(err)
	}
	built, err := state.Build(h.db, tip.Parent(), txs, froms, nil, now, h.val, genesis.DevChainID)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(built.Dropped) != 0 {
		h.t.Fatalf("block %d: Build dropped %+v", blk.Number, built.Dropped)
	}
	if got := scratch.Root(tip.Head.StateRoot); got != built.Block.Header.Root {
		h.t.Fatalf("block %d: scratch execution gives root %s, Build %s", blk.Number, got, built.Block.Header.Root)
	}
	h.raftIdx++
	if _, err := h.db.ApplyBlock(built.Block, h.raftIdx, h.senders); err != nil {
		h.t.Fatalf("apply block %d: %v", blk.Number, err)
	}
	stored, err := h.db.Receipts(built.Block)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := range res {
		r := stored[i]
		res[i].receipt = r
		if r.Status == state.StatusSuccess != (res[i].reason == "") {
			h.t.Fatalf("tx %d (%s): receipt status %d but reason %q", i, steps[i], r.Status, res[i].reason)
		}
		if err := sameLogs(simLogs[i], r.Logs); err != nil {
			h.t.Fatalf("tx %d (%s): stored logs differ from execution: %v", i, steps[i], err)
		}
		kept, ok, err := h.db.KeptReason(blk.Number, uint32(i))
		if err != nil {
			h.t.Fatal(err)
		}
		if want := res[i].reason; ok != (want != "") || (ok && kept != state.FailureReason(errors.New(want))) {
			h.t.Fatalf("tx %d (%s): kept reason %q (kept %v), execution's %q", i, steps[i], kept, ok, want)
		}
	}
	if err := h.db.CheckConservation(); err != nil {
		h.t.Fatalf("after block %d: %v", blk.Number, err)
	}
	h.checkLatestPast(blk.Number)
	return res
}

// checkLatestPast: the head's state read through the past-state path
// (what eth_call at "latest" reads) is the applied state, key for key.
func (h *opHarness) checkLatestPast(n uint64) {
	h.t.Helper()
	p, err := h.db.StateAt(n)
	if err != nil {
		h.t.Fatalf("state at head %d: %v", n, err)
	}
	for k, v := range h.stateDump() {
		got, err := p.Get([]byte(k))
		if err != nil {
			h.t.Fatalf("state at head %d, key %x: %v", n, k, err)
		}
		if !bytes.Equal(got, v) {
			h.t.Fatalf("state at head %d, key %x: past-state read %x, applied %x", n, k, got, v)
		}
	}
}

// mustBlock applies steps in one block; each must succeed, or fail with
// the reason it is marked failing with.
func (h *opHarness) mustBlock(atMs uint64, steps ...opStep) []txResult {
	h.t.Helper()
	res := h.block(atMs, steps...)
	for i, r := range res {
		s := steps[i]
		switch {
		case s.fails == "" && !r.ok():
			h.t.Fatalf("setup tx %d (%s) failed: %s", i, s, r.reason)
		case s.fails != "" && r.ok():
			h.t.Fatalf("setup tx %d (%s) succeeded, want failure %q", i, s, s.fails)
		case s.fails != "" && !strings.Contains(r.reason, s.fails):
			h.t.Fatalf("setup tx %d (%s) failed with %q, want %q", i, s, r.reason, s.fails)
		}
	}
	return res
}

func sameLogs(a, b []*types.Log) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d logs vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Address != b[i].Address || !slices.Equal(a[i].Topics, b[i].Topics) || !bytes.Equal(a[i].Data, b[i].Data) {
			return fmt.Errorf("log %d: %s vs %s", i, decodeLog(a[i]), decodeLog(b[i]))
		}
	}
	return nil
}

// view calls a read-only operation through Call (eth_call) on the head state.
func (h *opHarness) view(a *abi.ABI, contract common.Address, method string, args ...any) []any {
	h.t.Helper()
	data, err := a.Pack(method, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	out, gas, err := state.Call(h.db, h.db.HeadContext(), common.Address{}, contract, nil, data)
	if err != nil {
		h.t.Fatalf("eth_call %s: %v", method, err)
	}
	if gas != chain.GasPerSystemCall {
		h.t.Fatalf("eth_call %s: gas %d", method, gas)
	}
	vals, err := a.Methods[method].Outputs.Unpack(out)
	if err != nil {
		h.t.Fatalf("eth_call %s: unpack: %v", method, err)
	}
	return vals
}

func (h *opHarness) assetView(asset uint32, method string, args ...any) []any {
	return h.view(&chain.AssetABI, chain.AssetAddress(asset), method, args...)
}

func (h *opHarness) complianceView(method string, args ...any) []any {
	return h.view(&chain.ComplianceABI, chain.ComplianceAddress, method, args...)
}

// expectView fails t unless a view returns want.
func expectView(t testing.TB, what string, got []any, want ...any) {
	t.Helper()
	if g, w := fmtVals(got), fmtVals(want); g != w {
		t.Errorf("%s = (%s), want (%s)", what, g, w)
	}
}

// fmtVal formats an ABI value the same way whether it was decoded or written
// in a test table.
func fmtVal(v any) string {
	switch v := v.(type) {
	case common.Address:
		return nameOf(v)
	case *big.Int:
		return v.String()
	case [32]byte:
		if n, ok := refNames.Load(v); ok {
			return "ref:" + n.(string)
		}
		return common.Hash(v).Hex()
	case common.Hash:
		return fmtVal([32]byte(v))
	case string:
		return fmt.Sprintf("%q", v)
	case int:
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%v", v)
}

func fmtVals(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmtVal(v)
	}
	return strings.Join(parts, ", ")
}

// eventOf finds a log's event in the published ABIs.
func eventOf(topic common.Hash) (*abi.Event, error) {
	for _, a := range []*abi.ABI{&chain.AssetABI, &chain.ComplianceABI, &chain.GovernanceABI} {
		if ev, err := a.EventByID(topic); err == nil {
			return ev, nil
		}
	}
	return chain.ExchangeABI.EventByID(topic)
}

// decodeLog renders a log as Event@Contract(name=value, ...), decoding its
// topics and data with the published ABIs.
func decodeLog(l *types.Log) string {
	if len(l.Topics) == 0 {
		return fmt.Sprintf("anonymous log at %s", nameOf(l.Address))
	}
	ev, err := eventOf(l.Topics[0])
	if err != nil {
		return fmt.Sprintf("unknown event %s at %s", l.Topics[0], nameOf(l.Address))
	}
	var indexed abi.Arguments
	for _, in := range ev.Inputs {
		if in.Indexed {
			indexed = append(indexed, in)
		}
	}
	vals := map[string]any{}
	if err := abi.ParseTopicsIntoMap(vals, indexed, l.Topics[1:]); err != nil {
		return fmt.Sprintf("%s@%s: bad topics: %v", ev.Name, nameOf(l.Address), err)
	}
	if err := ev.Inputs.UnpackIntoMap(vals, l.Data); err != nil {
		return fmt.Sprintf("%s@%s: bad data: %v", ev.Name, nameOf(l.Address), err)
	}
	parts := make([]string, len(ev.Inputs))
	for i, in := range ev.Inputs {
		parts[i] = in.Name + "=" + fmtVal(vals[in.Name])
	}
	return fmt.Sprintf("%s@%s(%s)", ev.Name, nameOf(l.Address), strings.Join(parts, ", "))
}

// wantLog renders an expected log the way decodeLog renders a real one.
func wantLog(contract common.Address, event string, args ...any) string {
	a := &chain.AssetABI
	switch contract {
	case chain.ComplianceAddress:
		a = &chain.ComplianceABI
	case chain.GovernanceAddress:
		a = &chain.GovernanceABI
	case chain.ExchangeAddress:
		a = &chain.ExchangeABI
	}
	ev, ok := a.Events[event]
	if !ok || len(args) != len(ev.Inputs) {
		panic(fmt.Sprintf("bad expected log %s with %d args", event, len(args)))
	}
	parts := make([]string, len(ev.Inputs))
	for i, in := range ev.Inputs {
		parts[i] = in.Name + "=" + fmtVal(args[i])
	}
	return fmt.Sprintf("%s@%s(%s)", ev.Name, nameOf(contract), strings.Join(parts, ", "))
}

func logTransfer(asset uint32, from, to common.Address, amount *big.Int) string {
	return wantLog(chain.AssetAddress(asset), "Transfer", from, to, amount)
}

// stateDump reads every state key of the applied state.
func (h *opHarness) stateDump() map[string][]byte {
	h.t.Helper()
	d := h.db
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixState, UpperBound: upperBound(prefixState)})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]byte{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = slices.Clone(it.Value())
	}
	if err := it.Close(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

type balKey struct {
	asset uint32
	who   common.Address
}

// stateDiff is what changed between two dumps, decoded.
type stateDiff struct {
	nonces map[common.Address][2]uint64 // before, after
	bals   map[balKey]*big.Int          // after − before
	supply map[uint32][3]*big.Int       // minted, burned, escrow: after − before
	other  []string                     // every other changed key, named
}

var keyNames = map[string]string{
	string(prefixAccount): "account", string(prefixOutflow): "outflow", string(prefixBankRef): "bankRef",
	string(prefixWithdraw): "withdrawal", string(keyWithdrawSeq): "withdrawal-seq", string(prefixPayment): "payment",
	string(prefixAllowance): "allowance", string(keyRules): "rules", string(prefixValidator): "validator",
	string(prefixOffer): "offer", string(keyOfferSeq): "offer-seq", string(prefixIssuance): "issuance",
	string(prefixSuccessor): "successor",
}

func diffStates(before, after map[string][]byte) (stateDiff, error) {
	d := stateDiff{nonces: map[common.Address][2]uint64{}, bals: map[balKey]*big.Int{}, supply: map[uint32][3]*big.Int{}}
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if !bytes.Equal(before[k], after[k]) {
			sorted = append(sorted, k)
		}
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		b, a := before[k], after[k]
		switch {
		case strings.HasPrefix(k, string(prefixNonce)) && len(k) == 22:
			addr := common.BytesToAddress([]byte(k[2:]))
			var n [2]uint64
			if len(b) == 8 {
				n[0] = binary.BigEndian.Uint64(b)
			}
			if len(a) == 8 {
				n[1] = binary.BigEndian.Uint64(a)
			}
			d.nonces[addr] = n
		case strings.HasPrefix(k, string(prefixBalance)) && len(k) == 26:
			bk := balKey{binary.BigEndian.Uint32([]byte(k[2:6])), common.BytesToAddress([]byte(k[6:]))}
			d.bals[bk] = new(big.Int).Sub(new(big.Int).SetBytes(a), new(big.Int).SetBytes(b))
		case strings.HasPrefix(k, string(prefixSupply)) && len(k) == 6:
			var sb, sa state.Supply
			if err := rlp.DecodeBytes(b, &sb); err != nil {
				return d, err
			}
			if err := rlp.DecodeBytes(a, &sa); err != nil {
				return d, err
			}
			d.supply[binary.BigEndian.Uint32([]byte(k[2:]))] = [3]*big.Int{
				new(big.Int).Sub(sa.Minted, sb.Minted), new(big.Int).Sub(sa.Burned, sb.Burned), new(big.Int).Sub(sa.Escrow, sb.Escrow),
			}
		default:
			name := keyNames[k[:2]]
			if name == "" {
				name = fmt.Sprintf("key %x", k)
			}
			d.other = append(d.other, name)
		}
	}
	return d, nil
}

func (d stateDiff) String() string {
	var parts []string
	for a, n := range d.nonces {
		parts = append(parts, fmt.Sprintf("nonce %s %d→%d", nameOf(a), n[0], n[1]))
	}
	for k, v := range d.bals {
		parts = append(parts, fmt.Sprintf("balance %d/%s %+d", k.asset, nameOf(k.who), v))
	}
	for id, s := range d.supply {
		parts = append(parts, fmt.Sprintf("supply %d minted %+d burned %+d escrow %+d", id, s[0], s[1], s[2]))
	}
	parts = append(parts, d.other...)
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// Expected effects of an operation.
type balChange struct {
	asset uint32
	who   uint32
	delta *big.Int
}

type supplyChange struct {
	asset                  uint32
	minted, burned, escrow *big.Int // nil: unchanged
}

func bal(asset, who uint32, delta *big.Int) balChange { return balChange{asset, who, delta} }

// opCase is one operation applied after a setup block.
type opCase struct {
	name  string
	setup []opStep // one block at genesis + 1 s; each must succeed unless marked failing
	at    uint64   // the op's block time, ms after genesis; 0: a second after the setup
	op    opStep
	// reason is a substring of the expected revert reason; "" expects success.
	reason string
	bals   []balChange
	supply []supplyChange
	logs   []string
	ret    []any // the operation's return values; nil: true for operations returning bool
	// keys names every other state key a success changes (keyNames, in any
	// order, once per key); nil leaves them unchecked.
	keys  []string
	check func(t *testing.T, h *opHarness)
}

// uniqueCaseNames fails the test if two of cases share a name (a
// subtest's name must say which case failed).
func uniqueCaseNames(t *testing.T, cases []opCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
	}
}

func runOpCase(t *testing.T, c opCase) {
	if c.reason != "" && (len(c.bals) > 0 || len(c.supply) > 0 || len(c.logs) > 0 || c.ret != nil || c.keys != nil) {
		t.Fatal("bad case: a failing operation expects effects")
	}
	h := newOpHarness(t)
	if len(c.setup) > 0 {
		h.mustBlock(1000, c.setup...)
	}
	head := h.db.Tip().Head
	at := c.at
	if at == 0 {
		at = head.TimeMs - h.t0 + 1000
	}
	blk := state.BlockContext{Number: head.Number + 1, TimeMs: h.blockTime(at)}
	callOut, callGas, callErr := state.Call(h.db, blk, who(c.op.from), c.op.to, c.op.value, c.op.data)

	before := h.stateDump()
	r := h.block(at, c.op)[0]
	after := h.stateDump()

	// Status and reason.
	switch {
	case c.reason == "" && !r.ok():
		t.Fatalf("%s: status 0 (%s), want success", c.op, r.reason)
	case c.reason != "" && r.ok():
		t.Fatalf("%s: succeeded, want revert %q", c.op, c.reason)
	case c.reason != "" && !strings.Contains(r.reason, c.reason):
		t.Fatalf("%s: reverted with %q, want %q", c.op, r.reason, c.reason)
	}

	// Gas: fixed per kind, whatever happens (an out-of-gas call reports its limit).
	wantGas := uint64(chain.GasPerTransfer)
	if chain.IsSystemAddress(c.op.to) {
		wantGas = chain.GasPerSystemCall
		if c.op.gas != 0 && c.op.gas < wantGas {
			wantGas = c.op.gas
		}
	}
	if r.receipt.GasUsed != wantGas {
		t.Errorf("gas used %d, want %d", r.receipt.GasUsed, wantGas)
	}

	// eth_call on the state before gives the same verdict (it has no gas limit).
	if c.op.gas == 0 {
		rv, isRevert := state.IsRevert(callErr)
		switch {
		case callErr != nil && !isRevert:
			t.Errorf("eth_call: %v", callErr)
		case r.ok() && callErr != nil:
			t.Errorf("eth_call reverts with %q, the transaction succeeded", rv.Reason)
		case r.ok() && !bytes.Equal(callOut, r.output):
			t.Errorf("eth_call returns %x, the transaction %x", callOut, r.output)
		case !r.ok() && (callErr == nil || rv.Reason != r.reason):
			t.Errorf("eth_call gives %v, the transaction reverted with %q", callErr, r.reason)
		case callGas != wantGas:
			t.Errorf("eth_call gas %d, want %d", callGas, wantGas)
		}
	}

	// State: the sender's nonce moved by one; a failure changed nothing else;
	// a success changed exactly the expected balances and supply.
	d, err := diffStates(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := d.nonces[r.from]; !ok || n[1] != n[0]+1 || len(d.nonces) != 1 {
		t.Errorf("nonces changed: %v, want only %s's, by one", d.nonces, nameOf(r.from))
	}
	if !r.ok() {
		if len(d.bals) > 0 || len(d.supply) > 0 || len(d.other) > 0 {
			t.Errorf("failed operation changed more than the sender's nonce: %s", d)
		}
		if len(r.receipt.Logs) != 0 {
			t.Errorf("failed operation emitted %d logs", len(r.receipt.Logs))
		}
	} else {
		checkBalances(t, c.bals, d)
		checkSupply(t, c.supply, d)
		if got, want := slices.Sorted(slices.Values(d.other)), slices.Sorted(slices.Values(c.keys)); c.keys != nil && !slices.Equal(got, want) {
			t.Errorf("other state keys changed: %q, want %q", got, want)
		}
	}

	// Logs, decoded with the published ABIs.
	var got []string
	for _, l := range r.receipt.Logs {
		got = append(got, decodeLog(l))
	}
	if !slices.Equal(got, c.logs) {
		t.Errorf("logs:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(c.logs, "\n      "))
	}

	// The return value.
	if r.ok() && c.op.method != nil {
		vals, err := c.op.method.Outputs.Unpack(r.output)
		if err != nil {
			t.Fatalf("unpack output %x: %v", r.output, err)
		}
		want := c.ret
		if want == nil {
			want = []any{true}
		}
		expectView(t, "return value", vals, want...)
	}

	// Replaying the signed transaction is refused: the builder drops it.
	replay, err := state.Build(h.db, h.db.Tip().Parent(), []*types.Transaction{r.tx}, []common.Address{r.from}, nil, 0, h.val, genesis.DevChainID)
	if err != nil {
		t.Fatal(err)
	}
	if len(replay.Included) != 0 || len(replay.Dropped) != 1 || !errors.Is(replay.Dropped[0].Err, state.ErrNonceTooLow) {
		t.Errorf("replayed tx: included %v dropped %v, want dropped with ErrNonceTooLow", replay.Included, replay.Dropped)
	}

	if c.check != nil && !t.Failed() {
		c.check(t, h)
	}
}

func checkBalances(t *testing.T, want []balChange, d stateDiff) {
	t.Helper()
	w := map[balKey]*big.Int{}
	for _, b := range want {
		k := balKey{b.asset, who(b.who)}
		if w[k] == nil {
			w[k] = new(big.Int)
		}
		w[k].Add(w[k], b.delta)
	}
	for k, v := range w {
		got := d.bals[k]
		if got == nil {
			got = new(big.Int)
		}
		if got.Cmp(v) != 0 {
			t.Errorf("balance of %s in asset %d changed by %s, want %s", nameOf(k.who), k.asset, got, v)
		}
	}
	for k, v := range d.bals {
		if w[k] == nil && v.Sign() != 0 {
			t.Errorf("balance of %s in asset %d changed by %s, want unchanged", nameOf(k.who), k.asset, v)
		}
	}
}

func checkSupply(t *testing.T, want []supplyChange, d stateDiff) {
	t.Helper()
	w := map[uint32][3]*big.Int{}
	for _, s := range want {
		w[s.asset] = [3]*big.Int{s.minted, s.burned, s.escrow}
	}
	for _, id := range []uint32{assetCNY, assetHKD} {
		got, exp := d.supply[id], w[id]
		for i, name := range []string{"minted", "burned", "escrow"} {
			g, e := got[i], exp[i]
			if g == nil {
				g = new(big.Int)
			}
			if e == nil {
				e = new(big.Int)
			}
			if g.Cmp(e) != 0 {
				t.Errorf("asset %d %s changed by %s, want %s", id, name, g, e)
			}
		}
	}
}

// Tier limits of the dev genesis, in whole units of either asset.
const (
	basicMaxBalance = 50_000
	basicMaxTx      = 5_000
	basicDaily      = 20_000
	newMaxBalance   = 1_000
)

// basicWith raises idBasic to tier 1 and gives it cnyAmount CNY.
func basicWith(cnyAmount *big.Int) []opStep {
	return []opStep{txSetTier(idBasic, 1), fundCNY(idBasic, cnyAmount)}
}

// basicSpentToday is idBasic at tier 1 with 30,000 CNY that has sent n
// transfers of the per-transfer maximum to alice today.
func basicSpentToday(n int) []opStep {
	s := basicWith(cny(30_000))
	for range n {
		s = append(s, valueTx(idBasic, who(idAlice), cny(basicMaxTx)))
	}
	return s
}

func opCases() []opCase {
	A, B, C := who(idAlice), who(idBob), who(idCarol)
	basic, newAcct := who(idBasic), who(idNew)
	cnyF, hkdF := chain.AssetAddress(assetCNY), chain.AssetAddress(assetHKD)
	zero := common.Address{}
	day := uint64(86_400_000)
	order, payout := ref("order-1"), ref("payout")
	var cases []opCase
	add := func(cs ...opCase) { cases = append(cases, cs...) }

	// Native value transfers.
	add(
		opCase{name: "native/transfer", op: valueTx(idAlice, B, cny(5)),
			bals: []balChange{bal(assetCNY, idAlice, neg(cny(5))), bal(assetCNY, idBob, cny(5))}},
		opCase{name: "native/zero value", op: valueTx(idAlice, B, bn(0))},
		opCase{name: "native/to self", op: valueTx(idAlice, A, cny(1))},
		opCase{name: "native/insufficient balance",
			setup: []opStep{txSetTier(idFull, 2), fundCNY(idFull, cny(10))},
			op:    valueTx(idFull, A, plus(cny(10), 1)), reason: "insufficient balance"},
		opCase{name: "native/whole balance", setup: []opStep{txSetTier(idFull, 2), fundCNY(idFull, cny(10))},
			op:   valueTx(idFull, A, cny(10)),
			bals: []balChange{bal(assetCNY, idFull, neg(cny(10))), bal(assetCNY, idAlice, cny(10))}},
		opCase{name: "native/tier 0 cannot send", setup: []opStep{fundCNY(idNew, cny(1))},
			op: valueTx(idNew, A, cny(1)), reason: "is not KYC-verified"},
		opCase{name: "native/unknown account cannot send even zero", op: valueTx(idNew, A, bn(0)), reason: "is not KYC-verified"},
		opCase{name: "native/frozen sender", setup: []opStep{txFreeze(idBob)}, op: valueTx(idBob, A, bn(1)), reason: "is frozen"},
		opCase{name: "native/frozen recipient", setup: []opStep{txFreeze(idBob)}, op: valueTx(idAlice, B, bn(1)), reason: "is frozen"},
		opCase{name: "native/per-transfer limit exactly at", setup: basicWith(cny(10_000)),
			op:   valueTx(idBasic, A, cny(basicMaxTx)),
			bals: []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx))), bal(assetCNY, idAlice, cny(basicMaxTx))}},
		opCase{name: "native/per-transfer limit one over", setup: basicWith(cny(10_000)),
			op: valueTx(idBasic, A, plus(cny(basicMaxTx), 1)), reason: "over the per-transfer limit 5000.00 CNY of tier 1"},
		opCase{name: "native/tier 0 max balance exactly at", op: valueTx(idAlice, newAcct, cny(newMaxBalance)),
			bals: []balChange{bal(assetCNY, idAlice, neg(cny(newMaxBalance))), bal(assetCNY, idNew, cny(newMaxBalance))}},
		opCase{name: "native/tier 0 max balance one over", op: valueTx(idAlice, newAcct, plus(cny(newMaxBalance), 1)),
			reason: "over the maximum 1000.00 CNY of tier 0"},
		opCase{name: "native/tier 1 max balance exactly at", setup: basicWith(cny(1)),
			op:   valueTx(idAlice, basic, cny(basicMaxBalance-1)),
			bals: []balChange{bal(assetCNY, idAlice, neg(cny(basicMaxBalance-1))), bal(assetCNY, idBasic, cny(basicMaxBalance-1))}},
		opCase{name: "native/tier 1 max balance one over", setup: basicWith(cny(1)),
			op: valueTx(idAlice, basic, plus(cny(basicMaxBalance-1), 1)), reason: "over the maximum"},
		opCase{name: "native/calldata to an account", op: rawTx(idAlice, B, []byte{1, 2, 3, 4}), reason: state.ErrDataNotAllowed.Error()},
		opCase{name: "native/value to a system address", op: valueTx(idAlice, cnyF, bn(1)), reason: "system operations take no value"},
	)

	// Facade transfers.
	add(
		opCase{name: "transfer/HKD", op: txTransfer(idAlice, assetHKD, idBob, hkd(10)),
			bals: []balChange{bal(assetHKD, idAlice, neg(hkd(10))), bal(assetHKD, idBob, hkd(10))},
			logs: []string{logTransfer(assetHKD, A, B, hkd(10))}},
		opCase{name: "transfer/CNY through its facade", op: txTransfer(idAlice, assetCNY, idBob, bn(7)),
			bals: []balChange{bal(assetCNY, idAlice, bn(-7)), bal(assetCNY, idBob, bn(7))},
			logs: []string{logTransfer(assetCNY, A, B, bn(7))}},
		opCase{name: "transfer/frozen sender", setup: []opStep{txFreeze(idBob)},
			op: txTransfer(idBob, assetHKD, idAlice, bn(1)), reason: "is frozen"},
		opCase{name: "transfer/frozen recipient", setup: []opStep{txFreeze(idBob)},
			op: txTransfer(idAlice, assetHKD, idBob, bn(1)), reason: "is frozen"},
		opCase{name: "transfer/tier 0 sender", setup: []opStep{fundHKD(idNew, hkd(5))},
			op: txTransfer(idNew, assetHKD, idAlice, bn(1)), reason: "not KYC-verified"},
		opCase{name: "transfer/HKD per-transfer exactly at", setup: append(basicWith(cny(1)), fundHKD(idBasic, hkd(10_000))),
			op:   txTransfer(idBasic, assetHKD, idAlice, hkd(basicMaxTx)),
			bals: []balChange{bal(assetHKD, idBasic, neg(hkd(basicMaxTx))), bal(assetHKD, idAlice, hkd(basicMaxTx))},
			logs: []string{logTransfer(assetHKD, basic, A, hkd(basicMaxTx))}},
		opCase{name: "transfer/HKD per-transfer one over", setup: append(basicWith(cny(1)), fundHKD(idBasic, hkd(10_000))),
			op: txTransfer(idBasic, assetHKD, idAlice, plus(hkd(basicMaxTx), 1)), reason: "over the per-transfer limit 5000.00 HKD of tier 1"},
		opCase{name: "transfer/HKD tier 0 max balance exactly at", op: txTransfer(idAlice, assetHKD, idNew, hkd(newMaxBalance)),
			bals: []balChange{bal(assetHKD, idAlice, neg(hkd(newMaxBalance))), bal(assetHKD, idNew, hkd(newMaxBalance))},
			logs: []string{logTransfer(assetHKD, A, newAcct, hkd(newMaxBalance))}},
		opCase{name: "transfer/HKD tier 0 max balance one over", op: txTransfer(idAlice, assetHKD, idNew, plus(hkd(newMaxBalance), 1)),
			reason: "balance of " + newAcct.Hex() + " would be 1000.01 HKD, over the maximum 1000.00 HKD of tier 0"},
		opCase{name: "transfer/insufficient", setup: []opStep{txSetTier(idFull, 2), fundHKD(idFull, bn(10))},
			op: txTransfer(idFull, assetHKD, idAlice, bn(11)), reason: "insufficient balance"},
		opCase{name: "transfer/to the zero address", op: assetTx(idAlice, assetHKD, "transfer", zero, bn(1)), reason: "transfer to the zero address"},
		opCase{name: "transfer/to a system address", op: assetTx(idAlice, assetHKD, "transfer", hkdF, bn(1)), reason: "transfer to system address"},
		opCase{name: "call/unknown selector", op: rawTx(idAlice, hkdF, []byte{0xde, 0xad, 0xbe, 0xef}), reason: "unknown operation selector"},
		opCase{name: "call/non-canonical calldata", op: rawTx(idAlice, hkdF, append(txTransfer(idAlice, assetHKD, idBob, bn(1)).data, 0)),
			reason: "not the canonical ABI encoding"},
		opCase{name: "call/no such asset", op: rawTx(idAlice, chain.AssetAddress(7), txTransfer(idAlice, assetHKD, idBob, bn(1)).data),
			reason: "no system contract"},
		opCase{name: "call/out of gas", op: txTransfer(idAlice, assetHKD, idBob, bn(1)).withGas(chain.GasPerSystemCall - 1), reason: "out of gas"},
		opCase{name: "call/gas exactly enough", op: txTransfer(idAlice, assetHKD, idBob, bn(1)).withGas(chain.GasPerSystemCall),
			bals: []balChange{bal(assetHKD, idAlice, bn(-1)), bal(assetHKD, idBob, bn(1))},
			logs: []string{logTransfer(assetHKD, A, B, bn(1))}},
	)

	// Daily outflow limits, by UTC day of block time.
	remaining := func(want *big.Int) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "remainingDailyAllowance", h.complianceView("remainingDailyAllowance", basic, cnyF), want)
		}
	}
	add(
		opCase{name: "daily/exactly at", setup: basicSpentToday(3), op: valueTx(idBasic, A, cny(basicMaxTx)),
			bals:  []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx))), bal(assetCNY, idAlice, cny(basicMaxTx))},
			check: remaining(bn(0))},
		opCase{name: "daily/one over", setup: basicSpentToday(4), op: valueTx(idBasic, A, bn(1)),
			reason: "over the daily outflow limit 20000.00 CNY of tier 1: 0.00 CNY left today (UTC)"},
		opCase{name: "daily/one over with some left", setup: append(basicSpentToday(3), valueTx(idBasic, A, cny(basicMaxTx-1))),
			op: valueTx(idBasic, A, plus(cny(1), 1)), reason: "over the daily outflow limit 20000.00 CNY of tier 1: 1.00 CNY left today"},
		opCase{name: "daily/exactly what is left", setup: append(basicSpentToday(3), valueTx(idBasic, A, cny(basicMaxTx-1))),
			op: valueTx(idBasic, A, cny(1)), bals: []balChange{bal(assetCNY, idBasic, neg(cny(1))), bal(assetCNY, idAlice, cny(1))},
			check: remaining(bn(0))},
		opCase{name: "daily/last millisecond of the UTC day", setup: basicSpentToday(4), at: day - 1,
			op: valueTx(idBasic, A, bn(1)), reason: "over the daily outflow limit"},
		opCase{name: "daily/resets at the next UTC day", setup: basicSpentToday(4), at: day,
			op:    valueTx(idBasic, A, cny(basicMaxTx)),
			bals:  []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx))), bal(assetCNY, idAlice, cny(basicMaxTx))},
			check: remaining(cny(basicDaily - basicMaxTx))},
		opCase{name: "daily/withdrawal counts", setup: basicSpentToday(4), op: txWithdraw(idBasic, assetCNY, cent),
			reason: "over the daily outflow limit"},
		opCase{name: "daily/transferFrom counts for the owner", setup: append(basicSpentToday(4), txApprove(idBasic, assetCNY, idBob, cny(1))),
			op: txTransferFrom(idBob, assetCNY, idBasic, idAlice, bn(1)), reason: "over the daily outflow limit"},
		opCase{name: "daily/facade transfers count", setup: basicSpentToday(4), op: txTransfer(idBasic, assetCNY, idAlice, bn(1)),
			reason: "over the daily outflow limit"},
		opCase{name: "daily/assets are separate", setup: append(basicSpentToday(4), fundHKD(idBasic, hkd(10))),
			op:   txTransfer(idBasic, assetHKD, idAlice, hkd(10)),
			bals: []balChange{bal(assetHKD, idBasic, neg(hkd(10))), bal(assetHKD, idAlice, hkd(10))},
			logs: []string{logTransfer(assetHKD, basic, A, hkd(10))}},
		opCase{name: "daily/forced transfers do not count", setup: basicSpentToday(4),
			op:   txForce(idCompliance, assetCNY, idBasic, idAlice, bn(1), "recovery"),
			bals: []balChange{bal(assetCNY, idBasic, bn(-1)), bal(assetCNY, idAlice, bn(1))},
			logs: []string{logTransfer(assetCNY, basic, A, bn(1)), wantLog(cnyF, "ForcedTransfer", basic, A, bn(1), "recovery")}},
	)

	// approve / transferFrom.
	allowance := func(owner, spender uint32, want *big.Int) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "allowance", h.assetView(assetCNY, "allowance", who(owner), who(spender)), want)
		}
	}
	approved := []opStep{txApprove(idAlice, assetCNY, idBob, bn(100))}
	add(
		opCase{name: "approve", op: txApprove(idAlice, assetCNY, idBob, bn(100)),
			logs: []string{wantLog(cnyF, "Approval", A, B, bn(100))}, check: allowance(idAlice, idBob, bn(100))},
		opCase{name: "approve/overwrites", setup: approved, op: txApprove(idAlice, assetCNY, idBob, bn(3)),
			logs: []string{wantLog(cnyF, "Approval", A, B, bn(3))}, check: allowance(idAlice, idBob, bn(3))},
		opCase{name: "approve/frozen owner", setup: []opStep{txFreeze(idAlice)}, op: txApprove(idAlice, assetCNY, idBob, bn(1)), reason: "is frozen"},
		opCase{name: "approve/zero address", op: assetTx(idAlice, assetCNY, "approve", zero, bn(1)), reason: "approve to the zero address"},
		opCase{name: "transferFrom/within allowance", setup: approved, op: txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(60)),
			bals: []balChange{bal(assetCNY, idAlice, bn(-60)), bal(assetCNY, idCarol, bn(60))},
			logs: []string{logTransfer(assetCNY, A, C, bn(60))}, check: allowance(idAlice, idBob, bn(40))},
		opCase{name: "transferFrom/exactly the allowance", setup: approved, op: txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(100)),
			bals: []balChange{bal(assetCNY, idAlice, bn(-100)), bal(assetCNY, idCarol, bn(100))},
			logs: []string{logTransfer(assetCNY, A, C, bn(100))}, check: allowance(idAlice, idBob, bn(0))},
		opCase{name: "transferFrom/one over the allowance", setup: approved, op: txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(101)),
			reason: "allowance of " + B.Hex() + " from " + A.Hex() + " is 100, below 101"},
		opCase{name: "transferFrom/allowance exhausted", setup: append(approved, txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(100))),
			op: txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(1)), reason: "is 0, below 1"},
		opCase{name: "transferFrom/without allowance", op: txTransferFrom(idCarol, assetCNY, idAlice, idCarol, bn(1)), reason: "is 0, below 1"},
		opCase{name: "transferFrom/allowance is per asset", setup: approved, op: txTransferFrom(idBob, assetHKD, idAlice, idCarol, bn(1)),
			reason: "is 0, below 1"},
		opCase{name: "transferFrom/frozen spender", setup: append(approved, txFreeze(idBob)),
			op: txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(1)), reason: "is frozen"},
		opCase{name: "transferFrom/frozen owner", setup: append(approved, txFreeze(idAlice)),
			op: txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(1)), reason: "is frozen"},
		opCase{name: "transferFrom/frozen recipient", setup: append(approved, txFreeze(idCarol)),
			op: txTransferFrom(idBob, assetCNY, idAlice, idCarol, bn(1)), reason: "is frozen"},
		opCase{name: "transferFrom/tier 0 owner", setup: []opStep{fundCNY(idNew, bn(10)), txApprove(idNew, assetCNY, idBob, bn(10))},
			op: txTransferFrom(idBob, assetCNY, idNew, idAlice, bn(1)), reason: "not KYC-verified"},
		opCase{name: "transferFrom/owner's per-transfer limit exactly at",
			setup: append(basicWith(cny(10_000)), txApprove(idBasic, assetCNY, idBob, cny(10_000))),
			op:    txTransferFrom(idBob, assetCNY, idBasic, idAlice, cny(basicMaxTx)),
			bals:  []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx))), bal(assetCNY, idAlice, cny(basicMaxTx))},
			logs:  []string{logTransfer(assetCNY, basic, A, cny(basicMaxTx))}},
		opCase{name: "transferFrom/owner's per-transfer limit one over",
			setup: append(basicWith(cny(10_000)), txApprove(idBasic, assetCNY, idBob, cny(10_000))),
			op:    txTransferFrom(idBob, assetCNY, idBasic, idAlice, plus(cny(basicMaxTx), 1)), reason: "over the per-transfer limit"},
	)

	// transferWithReference and merchant refunds.
	paid := []opStep{txPay(idAlice, assetHKD, idBob, hkd(25), "order-1")}
	paidUnder := func(p, r int64) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "paidUnderReference", h.assetView(assetHKD, "paidUnderReference", B, order, A), bn(p), bn(r))
		}
	}
	add(
		opCase{name: "pay/transferWithReference", op: txPay(idAlice, assetHKD, idBob, hkd(25), "order-1"),
			bals:  []balChange{bal(assetHKD, idAlice, neg(hkd(25))), bal(assetHKD, idBob, hkd(25))},
			logs:  []string{logTransfer(assetHKD, A, B, hkd(25)), wantLog(hkdF, "PaymentReference", order, A, B, hkd(25))},
			check: paidUnder(2500, 0)},
		opCase{name: "pay/accumulates under one reference", setup: paid, op: txPay(idAlice, assetHKD, idBob, bn(1), "order-1"),
			bals:  []balChange{bal(assetHKD, idAlice, bn(-1)), bal(assetHKD, idBob, bn(1))},
			logs:  []string{logTransfer(assetHKD, A, B, bn(1)), wantLog(hkdF, "PaymentReference", order, A, B, bn(1))},
			check: paidUnder(2501, 0)},
		opCase{name: "pay/frozen merchant", setup: []opStep{txFreeze(idBob)}, op: txPay(idAlice, assetHKD, idBob, bn(1), "order-1"), reason: "is frozen"},
		opCase{name: "pay/frozen payer", setup: []opStep{txFreeze(idAlice)}, op: txPay(idAlice, assetHKD, idBob, bn(1), "order-1"), reason: "is frozen"},
		opCase{name: "pay/tier 0 merchant over its maximum", op: txPay(idAlice, assetHKD, idNew, plus(hkd(newMaxBalance), 1), "order-1"),
			reason: "over the maximum"},
		opCase{name: "refund/exactly what was paid", setup: paid, op: txRefund(idBob, assetHKD, "order-1", idAlice, hkd(25)),
			bals:  []balChange{bal(assetHKD, idBob, neg(hkd(25))), bal(assetHKD, idAlice, hkd(25))},
			logs:  []string{logTransfer(assetHKD, B, A, hkd(25)), wantLog(hkdF, "Refund", order, B, A, hkd(25))},
			check: paidUnder(2500, 2500)},
		opCase{name: "refund/one over what was paid", setup: paid, op: txRefund(idBob, assetHKD, "order-1", idAlice, plus(hkd(25), 1)),
			reason: "refund of 2501 is more than the 2500 left to refund"},
		opCase{name: "refund/the rest after a partial refund", setup: append(paid, txRefund(idBob, assetHKD, "order-1", idAlice, hkd(20))),
			op:    txRefund(idBob, assetHKD, "order-1", idAlice, hkd(5)),
			bals:  []balChange{bal(assetHKD, idBob, neg(hkd(5))), bal(assetHKD, idAlice, hkd(5))},
			logs:  []string{logTransfer(assetHKD, B, A, hkd(5)), wantLog(hkdF, "Refund", order, B, A, hkd(5))},
			check: paidUnder(2500, 2500)},
		opCase{name: "refund/one over the rest", setup: append(paid, txRefund(idBob, assetHKD, "order-1", idAlice, hkd(20))),
			op: txRefund(idBob, assetHKD, "order-1", idAlice, plus(hkd(5), 1)), reason: "refund of 501 is more than the 500 left to refund to " + A.Hex()},
		opCase{name: "refund/replayed", setup: append(paid, txRefund(idBob, assetHKD, "order-1", idAlice, hkd(25))),
			op: txRefund(idBob, assetHKD, "order-1", idAlice, hkd(25)), reason: "refund of 2500 is more than the 0 left to refund"},
		opCase{name: "refund/by someone who was not paid", setup: paid, op: txRefund(idCarol, assetHKD, "order-1", idAlice, bn(1)),
			reason: "left to refund"},
		opCase{name: "refund/to someone who did not pay", setup: paid, op: txRefund(idBob, assetHKD, "order-1", idCarol, bn(1)),
			reason: "left to refund"},
		opCase{name: "refund/under another reference", setup: paid, op: txRefund(idBob, assetHKD, "order-2", idAlice, bn(1)),
			reason: "left to refund"},
		opCase{name: "refund/in another asset", setup: paid, op: txRefund(idBob, assetCNY, "order-1", idAlice, bn(1)),
			reason: "left to refund"},
		opCase{name: "refund/zero", setup: paid, op: txRefund(idBob, assetHKD, "order-1", idAlice, bn(0)), reason: "amount must be positive"},
		opCase{name: "refund/frozen merchant", setup: append(paid, txFreeze(idBob)), op: txRefund(idBob, assetHKD, "order-1", idAlice, bn(1)),
			reason: "is frozen"},
		opCase{name: "refund/frozen payer", setup: append(paid, txFreeze(idAlice)), op: txRefund(idBob, assetHKD, "order-1", idAlice, bn(1)),
			reason: "is frozen"},
	)

	// Minting.
	minted := func(r string, want bool) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "bankRefUsed", h.assetView(assetCNY, "bankRefUsed", ref(r)), want)
		}
	}
	add(
		opCase{name: "mint/CNY by bank A", op: txMint(idBankA, assetCNY, idCarol, cny(100), "dep-1"),
			bals:   []balChange{bal(assetCNY, idCarol, cny(100))},
			supply: []supplyChange{{asset: assetCNY, minted: cny(100)}},
			logs:   []string{logTransfer(assetCNY, zero, C, cny(100)), wantLog(cnyF, "Minted", ref("dep-1"), who(idBankA), C, cny(100))},
			check:  minted("dep-1", true)},
		opCase{name: "mint/HKD by bank B", op: txMint(idBankB, assetHKD, idCarol, hkd(3), "dep-1"),
			bals:   []balChange{bal(assetHKD, idCarol, hkd(3))},
			supply: []supplyChange{{asset: assetHKD, minted: hkd(3)}},
			logs:   []string{logTransfer(assetHKD, zero, C, hkd(3)), wantLog(hkdF, "Minted", ref("dep-1"), who(idBankB), C, hkd(3))}},
		opCase{name: "mint/HKD by bank A, not its issuer", op: txMint(idBankA, assetHKD, idCarol, hkd(3), "dep-1"),
			reason: who(idBankA).Hex() + " is not an issuing bank of HKD", check: minted("dep-1", false)},
		opCase{name: "mint/by a non-bank", op: txMint(idAlice, assetCNY, idAlice, bn(1), "dep-1"), reason: "is not an issuing bank of CNY"},
		opCase{name: "mint/by compliance", op: txMint(idCompliance, assetCNY, idAlice, bn(1), "dep-1"), reason: "is not an issuing bank of CNY"},
		opCase{name: "mint/bank reference replayed", setup: []opStep{txMint(idBankA, assetCNY, idCarol, cny(100), "dep-1")},
			op: txMint(idBankA, assetCNY, idCarol, cny(100), "dep-1"), reason: "bank reference " + common.Hash(ref("dep-1")).Hex() + " has already minted"},
		opCase{name: "mint/bank reference replayed by the other bank", setup: []opStep{txMint(idBankA, assetCNY, idCarol, cny(100), "dep-1")},
			op: txMint(idBankB, assetCNY, idDave, bn(1), "dep-1"), reason: "has already minted"},
		opCase{name: "mint/bank reference replayed in another asset", setup: []opStep{txMint(idBankB, assetCNY, idCarol, cny(100), "dep-1")},
			op: txMint(idBankB, assetHKD, idCarol, bn(1), "dep-1"), reason: "has already minted"},
		opCase{name: "mint/a failed mint does not use its reference",
			setup: []opStep{txFreeze(idCarol), txMint(idBankA, assetCNY, idCarol, bn(5), "dep-9").failing("is frozen"), txUnfreeze(idCarol)},
			op:    txMint(idBankA, assetCNY, idCarol, bn(5), "dep-9"),
			bals:  []balChange{bal(assetCNY, idCarol, bn(5))}, supply: []supplyChange{{asset: assetCNY, minted: bn(5)}},
			logs: []string{logTransfer(assetCNY, zero, C, bn(5)), wantLog(cnyF, "Minted", ref("dep-9"), who(idBankA), C, bn(5))}},
		opCase{name: "mint/to a frozen account", setup: []opStep{txFreeze(idCarol)},
			op: txMint(idBankA, assetCNY, idCarol, bn(5), "dep-1"), reason: "is frozen"},
		opCase{name: "mint/tier 0 max balance exactly at", op: txMint(idBankB, assetHKD, idNew, hkd(newMaxBalance), "dep-1"),
			bals: []balChange{bal(assetHKD, idNew, hkd(newMaxBalance))}, supply: []supplyChange{{asset: assetHKD, minted: hkd(newMaxBalance)}},
			logs: []string{logTransfer(assetHKD, zero, newAcct, hkd(newMaxBalance)), wantLog(hkdF, "Minted", ref("dep-1"), who(idBankB), newAcct, hkd(newMaxBalance))}},
		opCase{name: "mint/tier 0 max balance one over", op: txMint(idBankB, assetHKD, idNew, plus(hkd(newMaxBalance), 1), "dep-1"),
			reason: "over the maximum 1000.00 HKD of tier 0", check: minted("dep-1", false)},
		opCase{name: "mint/tier 1 max balance one over after holdings", setup: basicWith(cny(basicMaxBalance - 1)),
			op: txMint(idBankA, assetCNY, idBasic, plus(cny(1), 1), "dep-1"), reason: "over the maximum"},
		opCase{name: "mint/by a frozen bank", setup: []opStep{txFreeze(idBankA)},
			op: txMint(idBankA, assetCNY, idCarol, bn(5), "dep-1"), reason: "account " + who(idBankA).Hex() + " is frozen"},
		opCase{name: "mint/zero", op: txMint(idBankA, assetCNY, idCarol, bn(0), "dep-1"), reason: "amount must be positive"},
		opCase{name: "mint/to a system address", op: assetTx(idBankA, assetCNY, "mint", chain.ComplianceAddress, bn(1), ref("dep-1")),
			reason: "transfer to system address"},
		opCase{name: "mint/to the zero address", op: assetTx(idBankA, assetCNY, "mint", zero, bn(1), ref("dep-1")),
			reason: "transfer to the zero address"},
	)

	// Withdrawals: request, settle, refund. A fresh chain's first id is 1.
	withdrawal := func(asset uint32, holder common.Address, amount *big.Int, status uint8) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "withdrawal(1)", h.assetView(asset, "withdrawal", bn(1)), holder, amount, payout, status, common.Address{}, [32]byte{})
			s := h.assetView(asset, "supply")
			expectView(t, "balanceOf(facade)", h.assetView(asset, "balanceOf", chain.AssetAddress(asset)), s[2])
		}
	}
	claimedBy := func(asset uint32, holder common.Address, amount *big.Int, status uint8, bank uint32, order string) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "withdrawal(1)", h.assetView(asset, "withdrawal", bn(1)), holder, amount, payout, status, who(bank), ref(order))
		}
	}
	requested := []opStep{txWithdraw(idAlice, assetCNY, cny(100))}
	requestedHKD := []opStep{txWithdraw(idAlice, assetHKD, hkd(100))}
	claimed := append(slices.Clone(requested), txClaim(idBankA, assetCNY, 1, "order-1"))
	claimedHKD := append(slices.Clone(requestedHKD), txClaim(idBankB, assetHKD, 1, "order-1"))
	add(
		opCase{name: "withdraw/request CNY", op: txWithdraw(idAlice, assetCNY, cny(100)),
			bals:   []balChange{bal(assetCNY, idAlice, neg(cny(100)))},
			supply: []supplyChange{{asset: assetCNY, escrow: cny(100)}},
			logs:   []string{logTransfer(assetCNY, A, cnyF, cny(100)), wantLog(cnyF, "WithdrawalRequested", bn(1), A, cny(100), payout)},
			ret:    []any{bn(1)}, check: withdrawal(assetCNY, A, cny(100), state.WithdrawalPending)},
		opCase{name: "withdraw/ids count up across assets", setup: requested, op: txWithdraw(idBob, assetHKD, hkd(1)),
			bals:   []balChange{bal(assetHKD, idBob, neg(hkd(1)))},
			supply: []supplyChange{{asset: assetHKD, escrow: hkd(1)}},
			logs:   []string{logTransfer(assetHKD, B, hkdF, hkd(1)), wantLog(hkdF, "WithdrawalRequested", bn(2), B, hkd(1), payout)},
			ret:    []any{bn(2)}},
		opCase{name: "withdraw/whole balance", setup: []opStep{txSetTier(idFull, 2), fundCNY(idFull, cny(10))},
			op:     txWithdraw(idFull, assetCNY, cny(10)),
			bals:   []balChange{bal(assetCNY, idFull, neg(cny(10)))},
			supply: []supplyChange{{asset: assetCNY, escrow: cny(10)}},
			logs:   []string{logTransfer(assetCNY, who(idFull), cnyF, cny(10)), wantLog(cnyF, "WithdrawalRequested", bn(1), who(idFull), cny(10), payout)},
			ret:    []any{bn(1)}},
		opCase{name: "withdraw/insufficient", setup: []opStep{txSetTier(idFull, 2), fundCNY(idFull, cny(10))},
			op: txWithdraw(idFull, assetCNY, new(big.Int).Add(cny(10), cent)), reason: "insufficient balance"},
		opCase{name: "withdraw/tier 0", setup: []opStep{fundCNY(idNew, cny(10))}, op: txWithdraw(idNew, assetCNY, cent), reason: "not KYC-verified"},
		opCase{name: "withdraw/frozen", setup: []opStep{txFreeze(idAlice)}, op: txWithdraw(idAlice, assetCNY, cent), reason: "is frozen"},
		// Minor units (ISO 4217): CNY has 2 decimal places, the native
		// asset 18, so a CNY withdrawal is a whole number of cents.
		opCase{name: "withdraw/one cent", op: txWithdraw(idAlice, assetCNY, cent),
			bals:   []balChange{bal(assetCNY, idAlice, neg(cent))},
			supply: []supplyChange{{asset: assetCNY, escrow: cent}},
			logs:   []string{logTransfer(assetCNY, A, cnyF, cent), wantLog(cnyF, "WithdrawalRequested", bn(1), A, cent, payout)},
			ret:    []any{bn(1)}},
		opCase{name: "withdraw/not whole minor units", op: txWithdraw(idAlice, assetCNY, big.NewInt(1_234_567_000_000_000_000)),
			reason: "amount 1234567000000000000 is not a whole number of CNY minor units: CNY has 2 decimal places, so the amount must be a multiple of 10000000000000000 base units"},
		opCase{name: "withdraw/one base unit", op: txWithdraw(idAlice, assetCNY, bn(1)), reason: "not a whole number of CNY minor units"},
		opCase{name: "withdraw/minor units checked before the sender", setup: []opStep{txFreeze(idAlice)},
			op: txWithdraw(idAlice, assetCNY, plus(cent, 1)), reason: "not a whole number of CNY minor units"},
		opCase{name: "withdraw/HKD base units are its minor units", op: txWithdraw(idAlice, assetHKD, bn(1)),
			bals:   []balChange{bal(assetHKD, idAlice, bn(-1))},
			supply: []supplyChange{{asset: assetHKD, escrow: bn(1)}},
			logs:   []string{logTransfer(assetHKD, A, hkdF, bn(1)), wantLog(hkdF, "WithdrawalRequested", bn(1), A, bn(1), payout)},
			ret:    []any{bn(1)}},
		opCase{name: "withdraw/zero", op: txWithdraw(idAlice, assetCNY, bn(0)), reason: "amount must be positive"},
		opCase{name: "withdraw/per-transfer limit exactly at", setup: basicWith(cny(10_000)), op: txWithdraw(idBasic, assetCNY, cny(basicMaxTx)),
			bals:   []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx)))},
			supply: []supplyChange{{asset: assetCNY, escrow: cny(basicMaxTx)}},
			logs:   []string{logTransfer(assetCNY, basic, cnyF, cny(basicMaxTx)), wantLog(cnyF, "WithdrawalRequested", bn(1), basic, cny(basicMaxTx), payout)},
			ret:    []any{bn(1)}},
		opCase{name: "withdraw/per-transfer limit one over", setup: basicWith(cny(10_000)), op: txWithdraw(idBasic, assetCNY, new(big.Int).Add(cny(basicMaxTx), cent)),
			reason: "over the per-transfer limit"},
		opCase{name: "settle/by bank A", setup: claimed, op: txSettle(idBankA, assetCNY, 1),
			supply: []supplyChange{{asset: assetCNY, burned: cny(100), escrow: neg(cny(100))}},
			logs:   []string{logTransfer(assetCNY, cnyF, zero, cny(100)), wantLog(cnyF, "WithdrawalSettled", bn(1), who(idBankA), A, cny(100))},
			keys:   []string{"withdrawal", "issuance"},
			check: func(t *testing.T, h *opHarness) {
				claimedBy(assetCNY, A, cny(100), state.WithdrawalSettled, idBankA, "order-1")(t, h)
				expectView(t, "bankIssuance(bankA)", h.assetView(assetCNY, "bankIssuance", who(idBankA)), bn(0), cny(100), neg(cny(100)), maxUint256)
			}},
		opCase{name: "settle/HKD by bank B", setup: claimedHKD, op: txSettle(idBankB, assetHKD, 1),
			supply: []supplyChange{{asset: assetHKD, burned: hkd(100), escrow: neg(hkd(100))}},
			logs:   []string{logTransfer(assetHKD, hkdF, zero, hkd(100)), wantLog(hkdF, "WithdrawalSettled", bn(1), who(idBankB), A, hkd(100))},
			check:  claimedBy(assetHKD, A, hkd(100), state.WithdrawalSettled, idBankB, "order-1")},
		opCase{name: "settle/unclaimed", setup: requested, op: txSettle(idBankA, assetCNY, 1),
			reason: "withdrawal 1 is not claimed: the paying bank claims it (claimWithdrawal) before it settles"},
		opCase{name: "settle/by the bank that did not claim it", setup: claimed, op: txSettle(idBankB, assetCNY, 1),
			reason: "withdrawal 1 is claimed by " + who(idBankA).Hex() + ", not " + who(idBankB).Hex()},
		opCase{name: "settle/HKD by bank A, not its issuer", setup: requestedHKD, op: txSettle(idBankA, assetHKD, 1), reason: "is not an issuing bank of HKD"},
		opCase{name: "settle/by a non-bank", setup: requested, op: txSettle(idAlice, assetCNY, 1), reason: "is not an issuing bank of CNY"},
		opCase{name: "settle/by compliance", setup: requested, op: txSettle(idCompliance, assetCNY, 1), reason: "is not an issuing bank of CNY"},
		opCase{name: "settle/by a frozen bank", setup: append(slices.Clone(claimed), txFreeze(idBankA)), op: txSettle(idBankA, assetCNY, 1),
			reason: "account " + who(idBankA).Hex() + " is frozen"},
		opCase{name: "settle/by the claiming bank while the other is frozen", setup: append(slices.Clone(requested), txClaim(idBankB, assetCNY, 1, "o"), txFreeze(idBankA)),
			op:     txSettle(idBankB, assetCNY, 1),
			supply: []supplyChange{{asset: assetCNY, burned: cny(100), escrow: neg(cny(100))}},
			logs:   []string{logTransfer(assetCNY, cnyF, zero, cny(100)), wantLog(cnyF, "WithdrawalSettled", bn(1), who(idBankB), A, cny(100))}},
		opCase{name: "refundWithdrawal/by a frozen bank", setup: append(requested, txFreeze(idBankA)),
			op: txRefundW(idBankA, assetCNY, 1, "rejected"), reason: "is frozen"},
		opCase{name: "settle/unknown id", setup: requested, op: txSettle(idBankA, assetCNY, 99), reason: "no CNY withdrawal 99"},
		opCase{name: "settle/id zero", setup: requested, op: txSettle(idBankA, assetCNY, 0), reason: "no CNY withdrawal 0"},
		opCase{name: "settle/huge id", setup: requested, op: assetTx(idBankA, assetCNY, "settleWithdrawal", new(big.Int).Lsh(bn(1), 200)),
			reason: "no CNY withdrawal"},
		opCase{name: "settle/through another asset's facade", setup: requested, op: txSettle(idBankB, assetHKD, 1), reason: "no HKD withdrawal 1"},
		opCase{name: "settle/twice", setup: append(slices.Clone(claimed), txSettle(idBankA, assetCNY, 1)), op: txSettle(idBankA, assetCNY, 1),
			reason: "withdrawal 1 is already settled"},
		opCase{name: "settle/after refund", setup: append(requested, txRefundW(idBankA, assetCNY, 1, "rejected")), op: txSettle(idBankA, assetCNY, 1),
			reason: "withdrawal 1 is already refunded"},
		opCase{name: "refundWithdrawal/by bank A", setup: requested, op: txRefundW(idBankA, assetCNY, 1, "payout rejected"),
			bals:   []balChange{bal(assetCNY, idAlice, cny(100))},
			supply: []supplyChange{{asset: assetCNY, escrow: neg(cny(100))}},
			logs: []string{logTransfer(assetCNY, cnyF, A, cny(100)),
				wantLog(cnyF, "WithdrawalRefunded", bn(1), who(idBankA), A, cny(100), "payout rejected")},
			check: withdrawal(assetCNY, A, cny(100), state.WithdrawalRefunded)},
		opCase{name: "refundWithdrawal/twice", setup: append(requested, txRefundW(idBankA, assetCNY, 1, "rejected")),
			op: txRefundW(idBankB, assetCNY, 1, "rejected"), reason: "withdrawal 1 is already refunded"},
		opCase{name: "refundWithdrawal/after settle", setup: append(slices.Clone(claimed), txSettle(idBankA, assetCNY, 1)),
			op: txRefundW(idBankA, assetCNY, 1, "rejected"), reason: "withdrawal 1 is already settled"},
		opCase{name: "refundWithdrawal/by a non-bank", setup: requested, op: txRefundW(idAlice, assetCNY, 1, "rejected"), reason: "is not an issuing bank"},
		opCase{name: "refundWithdrawal/HKD by bank A", setup: requestedHKD, op: txRefundW(idBankA, assetHKD, 1, "rejected"), reason: "is not an issuing bank of HKD"},
		opCase{name: "refundWithdrawal/unknown id", setup: requested, op: txRefundW(idBankA, assetCNY, 2, "rejected"), reason: "no CNY withdrawal 2"},
		opCase{name: "refundWithdrawal/without a reason", setup: requested, op: txRefundW(idBankA, assetCNY, 1, ""), reason: "a reason is required"},
		opCase{name: "refundWithdrawal/reason too long", setup: requested, op: txRefundW(idBankA, assetCNY, 1, strings.Repeat("x", state.MaxReason+1)),
			reason: "reason is longer than 256 bytes"},
		opCase{name: "refundWithdrawal/to a frozen holder", setup: append(requested, txFreeze(idAlice)),
			op:     txRefundW(idBankA, assetCNY, 1, "rejected"),
			bals:   []balChange{bal(assetCNY, idAlice, cny(100))},
			supply: []supplyChange{{asset: assetCNY, escrow: neg(cny(100))}},
			logs: []string{logTransfer(assetCNY, cnyF, A, cny(100)),
				wantLog(cnyF, "WithdrawalRefunded", bn(1), who(idBankA), A, cny(100), "rejected")}},
		opCase{name: "refundWithdrawal/over the holder's maximum",
			setup:  append(basicWith(cny(10_000)), txWithdraw(idBasic, assetCNY, cny(basicMaxTx)), fundCNY(idBasic, cny(basicMaxBalance-basicMaxTx))),
			op:     txRefundW(idBankB, assetCNY, 1, "rejected"),
			bals:   []balChange{bal(assetCNY, idBasic, cny(basicMaxTx))},
			supply: []supplyChange{{asset: assetCNY, escrow: neg(cny(basicMaxTx))}},
			logs: []string{logTransfer(assetCNY, cnyF, basic, cny(basicMaxTx)),
				wantLog(cnyF, "WithdrawalRefunded", bn(1), who(idBankB), basic, cny(basicMaxTx), "rejected")},
			check: func(t *testing.T, h *opHarness) {
				expectView(t, "balanceOf(basic)", h.assetView(assetCNY, "balanceOf", basic), cny(basicMaxBalance+basicMaxTx))
			}},
	)

	// Forced transfers.
	add(
		opCase{name: "force/from a frozen account", setup: []opStep{txFreeze(idBob)},
			op:   txForce(idCompliance, assetHKD, idBob, idCarol, bn(10), "court order"),
			bals: []balChange{bal(assetHKD, idBob, bn(-10)), bal(assetHKD, idCarol, bn(10))},
			logs: []string{logTransfer(assetHKD, B, C, bn(10)), wantLog(hkdF, "ForcedTransfer", B, C, bn(10), "court order")}},
		opCase{name: "force/from tier 0", setup: []opStep{fundCNY(idNew, cny(newMaxBalance))},
			op:   txForce(idCompliance, assetCNY, idNew, idAlice, cny(newMaxBalance), "lost key"),
			bals: []balChange{bal(assetCNY, idNew, neg(cny(newMaxBalance))), bal(assetCNY, idAlice, cny(newMaxBalance))},
			logs: []string{logTransfer(assetCNY, newAcct, A, cny(newMaxBalance)), wantLog(cnyF, "ForcedTransfer", newAcct, A, cny(newMaxBalance), "lost key")}},
		opCase{name: "force/over the sender's per-transfer limit", setup: basicWith(cny(10_000)),
			op:   txForce(idCompliance, assetCNY, idBasic, idAlice, cny(basicMaxTx+1), "court order"),
			bals: []balChange{bal(assetCNY, idBasic, neg(cny(basicMaxTx+1))), bal(assetCNY, idAlice, cny(basicMaxTx+1))},
			logs: []string{logTransfer(assetCNY, basic, A, cny(basicMaxTx+1)), wantLog(cnyF, "ForcedTransfer", basic, A, cny(basicMaxTx+1), "court order")}},
		opCase{name: "force/by a holder", op: txForce(idAlice, assetCNY, idBob, idAlice, bn(1), "mine"), reason: "only the compliance authority"},
		opCase{name: "force/by a bank", op: txForce(idBankA, assetCNY, idBob, idAlice, bn(1), "mine"), reason: "only the compliance authority"},
		opCase{name: "force/to a frozen account", setup: []opStep{txFreeze(idCarol)},
			op: txForce(idCompliance, assetCNY, idBob, idCarol, bn(1), "court order"), reason: "is frozen"},
		opCase{name: "force/recipient's maximum exactly at", op: txForce(idCompliance, assetCNY, idBob, idNew, cny(newMaxBalance), "court order"),
			bals: []balChange{bal(assetCNY, idBob, neg(cny(newMaxBalance))), bal(assetCNY, idNew, cny(newMaxBalance))},
			logs: []string{logTransfer(assetCNY, B, newAcct, cny(newMaxBalance)), wantLog(cnyF, "ForcedTransfer", B, newAcct, cny(newMaxBalance), "court order")}},
		opCase{name: "force/recipient's maximum one over", op: txForce(idCompliance, assetCNY, idBob, idNew, plus(cny(newMaxBalance), 1), "court order"),
			reason: "over the maximum"},
		opCase{name: "force/insufficient", setup: []opStep{txSetTier(idFull, 2), fundHKD(idFull, bn(10))},
			op: txForce(idCompliance, assetHKD, idFull, idAlice, bn(11), "court order"), reason: "insufficient balance"},
		opCase{name: "force/without a reason", op: txForce(idCompliance, assetCNY, idBob, idAlice, bn(1), ""), reason: "a reason is required"},
		opCase{name: "force/zero", op: txForce(idCompliance, assetCNY, idBob, idAlice, bn(0), "court order"), reason: "amount must be positive"},
	)

	// Compliance.
	tierIs := func(i uint32, tier uint8) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "kycTier", h.complianceView("kycTier", who(i)), tier)
		}
	}
	frozenIs := func(i uint32, frozen bool) func(t *testing.T, h *opHarness) {
		return func(t *testing.T, h *opHarness) {
			expectView(t, "isFrozen", h.complianceView("isFrozen", who(i)), frozen)
		}
	}
	compl := who(idCompliance)
	add(
		opCase{name: "setKycTier/raise", op: txSetTier(idNew, 2),
			logs: []string{wantLog(chain.ComplianceAddress, "KycTierSet", newAcct, compl, uint8(0), uint8(2), "kyc review")}, check: tierIs(idNew, 2)},
		opCase{name: "setKycTier/lower", op: txSetTier(idCarol, 1),
			logs: []string{wantLog(chain.ComplianceAddress, "KycTierSet", C, compl, uint8(3), uint8(1), "kyc review")}, check: tierIs(idCarol, 1)},
		opCase{name: "setKycTier/top tier", op: txSetTier(idNew, 3),
			logs: []string{wantLog(chain.ComplianceAddress, "KycTierSet", newAcct, compl, uint8(0), uint8(3), "kyc review")}, check: tierIs(idNew, 3)},
		opCase{name: "setKycTier/nonexistent tier", op: txSetTier(idNew, 4), reason: "tier 4 does not exist (tiers are 0..3)"},
		opCase{name: "setKycTier/by a holder", op: complianceTx(idAlice, "setKycTier", who(idAlice), uint8(3), "self"),
			reason: "only the compliance authority " + compl.Hex() + " may call setKycTier"},
		opCase{name: "setKycTier/by a bank", op: complianceTx(idBankA, "setKycTier", newAcct, uint8(1), "bank says"), reason: "only the compliance authority"},
		opCase{name: "setKycTier/keeps a freeze", setup: []opStep{txFreeze(idNew)}, op: txSetTier(idNew, 1),
			logs: []string{wantLog(chain.ComplianceAddress, "KycTierSet", newAcct, compl, uint8(0), uint8(1), "kyc review")}, check: frozenIs(idNew, true)},
		opCase{name: "setKycTier/upgraded tier 0 can send", setup: []opStep{fundCNY(idNew, cny(10)), txSetTier(idNew, 1)},
			op: valueTx(idNew, A, cny(10)), bals: []balChange{bal(assetCNY, idNew, neg(cny(10))), bal(assetCNY, idAlice, cny(10))}},
		opCase{name: "setKycTier/lowered holder over the new maximum cannot receive", setup: []opStep{txSetTier(idCarol, 1)},
			op: valueTx(idAlice, C, bn(1)), reason: "over the maximum 50000.00 CNY of tier 1"},
		opCase{name: "setKycTier/lowered holder over the new maximum can send within limits", setup: []opStep{txSetTier(idCarol, 1)},
			op: valueTx(idCarol, A, cny(basicMaxTx)), bals: []balChange{bal(assetCNY, idCarol, neg(cny(basicMaxTx))), bal(assetCNY, idAlice, cny(basicMaxTx))}},
		opCase{name: "setKycTier/lowered holder's per-transfer limit", setup: []opStep{txSetTier(idCarol, 1)},
			op: valueTx(idCarol, A, plus(cny(basicMaxTx), 1)), reason: "over the per-transfer limit"},
		opCase{name: "freeze", op: complianceTx(idCompliance, "freeze", B, "sanctions hit"),
			logs: []string{wantLog(chain.ComplianceAddress, "Frozen", B, compl, "sanctions hit")}, check: frozenIs(idBob, true)},
		opCase{name: "freeze/already frozen", setup: []opStep{txFreeze(idBob)}, op: txFreeze(idBob), reason: "account " + B.Hex() + " is already frozen"},
		opCase{name: "freeze/by a holder", op: complianceTx(idAlice, "freeze", B, "x"), reason: "only the compliance authority"},
		opCase{name: "freeze/by a bank", op: complianceTx(idBankB, "freeze", B, "x"), reason: "only the compliance authority"},
		opCase{name: "freeze/without a reason", op: complianceTx(idCompliance, "freeze", B, ""), reason: "a reason is required"},
		opCase{name: "freeze/an unknown account", op: txFreeze(idNew),
			logs: []string{wantLog(chain.ComplianceAddress, "Frozen", newAcct, compl, "court order")}, check: frozenIs(idNew, true)},
		opCase{name: "unfreeze", setup: []opStep{txFreeze(idBob)}, op: txUnfreeze(idBob),
			logs: []string{wantLog(chain.ComplianceAddress, "Unfrozen", B, compl, "case closed")},
			check: func(t *testing.T, h *opHarness) {
				frozenIs(idBob, false)(t, h)
				if r := h.block(0, valueTx(idBob, A, bn(1)), valueTx(idAlice, B, bn(1))); !r[0].ok() || !r[1].ok() {
					t.Errorf("unfrozen account cannot send or receive: %q %q", r[0].reason, r[1].reason)
				}
			}},
		opCase{name: "setKycTier/without a reason", op: complianceTx(idCompliance, "setKycTier", newAcct, uint8(1), ""), reason: "a reason is required"},
		opCase{name: "unfreeze/without a reason", setup: []opStep{txFreeze(idBob)}, op: complianceTx(idCompliance, "unfreeze", B, ""), reason: "a reason is required"},
		opCase{name: "unfreeze/not frozen", op: txUnfreeze(idBob), reason: "account " + B.Hex() + " is not frozen"},
		opCase{name: "unfreeze/by a holder", setup: []opStep{txFreeze(idBob)}, op: complianceTx(idBob, "unfreeze", B, "please"), reason: "only the compliance authority"},
		opCase{name: "compliance/unknown selector", op: rawTx(idCompliance, chain.ComplianceAddress, []byte{1, 2, 3, 4}), reason: "unknown operation selector"},
	)
	return append(cases, bankEdgeCases()...)
}

func TestOps(t *testing.T) {
	cases := opCases()
	uniqueCaseNames(t, cases)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runOpCase(t, c)
		})
	}
}

// TestOpsReplayedTxInBlockIsRejected: a block that carries an already
// applied transaction again is rejected as a whole and changes nothing, so
// a mint, a settlement or a transfer can never be applied twice.
func TestOpsReplayedTxInBlockIsRejected(t *testing.T) {
	cases := []struct {
		name  string
		setup []opStep
		op    opStep
	}{
		{"mint", nil, txMint(idBankA, assetCNY, idCarol, cny(1), "dep-1")},
		{"settle", []opStep{txWithdraw(idAlice, assetCNY, cny(1))}, txSettle(idBankA, assetCNY, 1)},
		{"refundWithdrawal", []opStep{txWithdraw(idAlice, assetCNY, cny(1))}, txRefundW(idBankA, assetCNY, 1, "rejected")},
		{"transfer", nil, txTransfer(idAlice, assetHKD, idBob, hkd(1))},
		{"value", nil, valueTx(idAlice, who(idBob), cny(1))},
		{"failed op", nil, txMint(idAlice, assetCNY, idAlice, cny(1), "dep-1")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newOpHarness(t)
			if len(c.setup) > 0 {
				h.mustBlock(0, c.setup...)
			}
			r := h.block(0, c.op)[0]
			before := h.stateDump()
			head := h.db.Tip().Head

			// The builder drops it.
			built, err := state.Build(h.db, h.db.Tip().Parent(), []*types.Transaction{r.tx}, []common.Address{r.from}, nil, 0, h.val, genesis.DevChainID)
			if err != nil {
				t.Fatal(err)
			}
			if len(built.Block.Txs) != 0 || len(built.Dropped) != 1 || !errors.Is(built.Dropped[0].Err, state.ErrNonceTooLow) {
				t.Fatalf("builder kept the replayed tx: txs %d dropped %v", len(built.Block.Txs), built.Dropped)
			}
			// A proposer that includes it anyway has its block rejected.
			hdr := types.CopyHeader(built.Block.Header)
			txs := []*types.Transaction{r.tx}
			hdr.TxHash = chain.TxRoot(txs)
			if err := chain.Seal(hdr, genesis.DevChainID, h.val); err != nil {
				t.Fatal(err)
			}
			h.raftIdx++
			_, err = h.db.ApplyBlock(chain.NewBlock(hdr, txs), h.raftIdx, h.senders)
			if !errors.Is(err, ErrBlockRejected) || !strings.Contains(err.Error(), state.ErrNonceTooLow.Error()) {
				t.Fatalf("apply block with a replayed tx: %v, want ErrBlockRejected for ErrNonceTooLow", err)
			}
			if after := h.stateDump(); !maps.EqualFunc(before, after, bytes.Equal) {
				d, _ := diffStates(before, after)
				t.Fatalf("rejected block changed the state: %s", d)
			}
			if now := h.db.Tip().Head; now.Hash != head.Hash || now.RaftIndex != h.raftIdx {
				t.Fatalf("head %+v after the rejected block, want %s at raft index %d", now, head.Hash, h.raftIdx)
			}
			if err := h.db.CheckConservation(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
