package rpc

import (
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/rpc/schema"
	"github.com/tally-ledger/tally/state"
)

// sign signs a call of data to `to` (a plain transfer of value when data
// is nil) by key, with its next nonce.
func (c *filterChain) sign(key *crypto.PrivateKey, to common.Address, value *big.Int, data []byte) *types.Transaction {
	c.t.Helper()
	id := big.NewInt(genesis.DevChainID)
	gas := uint64(21000)
	if data != nil {
		gas = 100_000
	}
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: c.nonces[key.Address()], To: &to, Gas: gas, Value: value, Data: data}), id, key)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nonces[key.Address()]++
	return tx
}

// blockAllowingFailures is filterChain.block for transactions that may
// fail at execution (status 0); it returns their statuses.
func (c *filterChain) blockAllowingFailures(txs ...*types.Transaction) []uint64 {
	c.t.Helper()
	froms, errs := c.senders.Senders(txs)
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
	tip := c.db.Tip()
	built, err := state.Build(c.db, tip.Parent(), txs, froms, nil, tip.Head.TimeMs+1000, c.val, genesis.DevChainID)
	if err != nil {
		c.t.Fatal(err)
	}
	c.raftIdx++
	applied, err := c.db.ApplyBlock(built.Block, c.raftIdx, c.senders)
	if err != nil {
		c.t.Fatal(err)
	}
	c.heads.Publish(built.Block)
	out := make([]uint64, len(applied.Receipts))
	for i, r := range applied.Receipts {
		out[i] = r.Status
	}
	return out
}

func ref32(s string) [32]byte {
	var r [32]byte
	copy(r[:], s)
	return r
}

func devKeyT(t *testing.T, i uint32) *crypto.PrivateKey {
	t.Helper()
	k, err := genesis.DevKey(i)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDecodeTransaction(t *testing.T) {
	c := newFilterChain(t)
	_, cl := serveFilters(t, c)
	shop, newcomer := c.addr(1), common.HexToAddress("0x00000000000000000000000000000000000e4b10")
	pay := c.call(0, 1, "transferWithReference", shop, big.NewInt(1250), ref32("ORDER-1234"))
	binary := c.call(0, 1, "transferWithReference", shop, big.NewInt(1), [32]byte{0: 0xff, 31: 1})
	native := c.sign(c.keys[2], shop, big.NewInt(2_500_000_000_000_000_000), nil)
	// A tier-0 account holds at most 1,000.00 HKD: 2,000.00 fails.
	over := c.call(3, 1, "transferWithReference", newcomer, big.NewInt(200_000), ref32("ORDER-OVER"))
	if st := c.blockAllowingFailures(pay, binary, native, over); st[0] != 1 || st[1] != 1 || st[2] != 1 || st[3] != 0 {
		t.Fatalf("statuses %v", st)
	}

	var d schema.DecodedTx
	if err := cl.Call(&d, "tally_decodeTransaction", pay.Hash()); err != nil {
		t.Fatal(err)
	}
	if d.Operation != "transferWithReference" || d.Contract != "asset" || d.Asset != "HKD" || d.Status == nil || *d.Status != 1 ||
		d.BlockNumber == nil || *d.BlockNumber != 1 || d.TxIndex == nil || *d.TxIndex != 0 || d.TimestampMs == 0 {
		t.Fatalf("payment decoded as %+v", d)
	}
	if d.Amount == nil || d.Amount.Text != "12.50 HKD" || d.Amount.Units != "12.50" || d.Amount.Value.ToInt().Int64() != 1250 {
		t.Fatalf("amount %+v", d.Amount)
	}
	if d.Payer == nil || *d.Payer != c.addr(0) || d.Payee == nil || *d.Payee != shop || d.From != c.addr(0) {
		t.Fatalf("payer %v payee %v", d.Payer, d.Payee)
	}
	if d.Reference == nil || d.Reference.Text == nil || *d.Reference.Text != "ORDER-1234" || d.Reference.Hex != common.Hash(ref32("ORDER-1234")) {
		t.Fatalf("reference %+v", d.Reference)
	}
	if len(d.Transfers) != 1 || d.Transfers[0].Amount.Text != "12.50 HKD" || d.Transfers[0].From != c.addr(0) || d.Transfers[0].To != shop {
		t.Fatalf("transfers %+v", d.Transfers)
	}
	if len(d.Events) != 2 || d.Events[0].Name != "Transfer" || d.Events[1].Name != "PaymentReference" || d.Events[1].Asset != "HKD" {
		t.Fatalf("events %+v", d.Events)
	}
	if len(d.Args) != 3 || d.Args[2].Name != "ref" || d.Args[2].Text != "ORDER-1234" || d.Args[1].Text != "12.50 HKD" {
		t.Fatalf("args %+v", d.Args)
	}

	// A binary reference has no text: it is shown as hex.
	if err := cl.Call(&d, "tally_decodeTransaction", binary.Hash()); err != nil {
		t.Fatal(err)
	}
	if d.Reference == nil || d.Reference.Text != nil || d.Reference.Hex != common.Hash([32]byte{0: 0xff, 31: 1}) {
		t.Fatalf("binary reference %+v", d.Reference)
	}

	// A native transfer: the value in CNY units.
	d = schema.DecodedTx{}
	if err := cl.Call(&d, "tally_decodeTransaction", native.Hash()); err != nil {
		t.Fatal(err)
	}
	if d.Operation != "transfer" || d.Contract != "account" || d.Asset != "CNY" || d.Amount == nil || d.Amount.Text != "2.50 CNY" ||
		d.Reference != nil || len(d.Transfers) != 1 || d.Transfers[0].Amount.Text != "2.50 CNY" || len(d.Events) != 0 {
		t.Fatalf("native transfer decoded as %+v", d)
	}

	// A failed payment: status 0, what it asked for, and nothing moved.
	d = schema.DecodedTx{}
	if err := cl.Call(&d, "tally_decodeTransaction", over.Hash()); err != nil {
		t.Fatal(err)
	}
	if d.Status == nil || *d.Status != 0 || d.Amount == nil || d.Amount.Text != "2000.00 HKD" || len(d.Transfers) != 0 || len(d.Events) != 0 ||
		d.Payee == nil || *d.Payee != newcomer {
		t.Fatalf("failed payment decoded as %+v", d)
	}

	// An unknown hash is null, as eth_getTransactionByHash.
	var raw any = "unset"
	if err := cl.Call(&raw, "tally_decodeTransaction", common.Hash{1}); err != nil || raw != nil {
		t.Fatalf("unknown transaction: %v %v", raw, err)
	}
	// A malformed hash is -32602.
	wantFilterErr(t, "short hash", cl.Call(&raw, "tally_decodeTransaction", "0x12"), CodeInvalidParams, "invalid argument 0")
}

// A mint's payee is the holder and nobody pays; its bank reference is the
// reference. Calldata that no operation matches keeps its raw data.
func TestDecodeTxOperations(t *testing.T) {
	c := newFilterChain(t)
	rules, err := c.db.Rules()
	if err != nil {
		t.Fatal(err)
	}
	bank := devKeyT(t, genesis.DevBankBIndex)
	data, err := chain.AssetABI.Pack("mint", c.addr(5), big.NewInt(10_000), ref32("DEPOSIT-1"))
	if err != nil {
		t.Fatal(err)
	}
	mint := c.sign(bank, chain.AssetAddress(1), nil, data)
	d := DecodeTx(rules, mint, bank.Address(), nil)
	if d.Operation != "mint" || d.Payer != nil || d.Payee == nil || *d.Payee != c.addr(5) || d.Amount.Text != "100.00 HKD" ||
		d.Reference == nil || *d.Reference.Text != "DEPOSIT-1" || d.Status != nil || d.BlockNumber != nil {
		t.Fatalf("pending mint decoded as %+v", d)
	}
	batchData, err := chain.AssetABI.Pack("batchTransfer", []common.Address{c.addr(1), c.addr(2)}, []*big.Int{big.NewInt(100), big.NewInt(250)}, ref32("PAYROLL"))
	if err != nil {
		t.Fatal(err)
	}
	batch := DecodeTx(rules, c.sign(c.keys[0], chain.AssetAddress(1), nil, batchData), c.addr(0), nil)
	if batch.Amount == nil || batch.Amount.Text != "3.50 HKD" || *batch.Payer != c.addr(0) || batch.Payee != nil {
		t.Fatalf("batch decoded as %+v", batch)
	}
	junk := DecodeTx(rules, c.sign(c.keys[0], chain.AssetAddress(1), nil, []byte{1, 2, 3, 4, 5}), c.addr(0), nil)
	if junk.Operation != "" || len(junk.Args) != 0 || hexutil.Encode(junk.Data) != "0x0102030405" || junk.Amount != nil {
		t.Fatalf("junk calldata decoded as %+v", junk)
	}
}

func TestGetRecentTransactions(t *testing.T) {
	c := newFilterChain(t)
	srv, err := NewServer(c, func() Limits { l := DefaultLimits; l.MaxLogBlockRange = 4; return l }(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	cl := gethrpc.DialInProc(srv.rpc)
	t.Cleanup(cl.Close)
	var hashes []common.Hash
	for i := range 3 {
		a, b := c.call(0, 1, "transfer", c.addr(1), big.NewInt(int64(i+1))), c.call(1, 1, "transfer", c.addr(2), big.NewInt(int64(i+1)))
		c.block(a, b)
		hashes = append(hashes, a.Hash(), b.Hash())
	}
	var page schema.RecentTransactions
	if err := cl.Call(&page, "tally_getRecentTransactions", hexutil.Uint(4)); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 || page.To != 3 || page.From != 2 {
		t.Fatalf("recent: %d items in blocks %d..%d", len(page.Items), page.From, page.To)
	}
	for i, d := range page.Items {
		if d.Hash != hashes[len(hashes)-1-i] {
			t.Fatalf("item %d is %s, want %s (newest first)", i, d.Hash, hashes[len(hashes)-1-i])
		}
	}
	// Empty blocks: the search stops after http.max-log-block-range blocks.
	for range 4 {
		c.block()
	}
	if err := cl.Call(&page, "tally_getRecentTransactions", nil); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 0 || page.To != 7 || page.From != 4 {
		t.Fatalf("after 4 empty blocks: %d items in blocks %d..%d, want none in 4..7", len(page.Items), page.From, page.To)
	}
	for _, bad := range []hexutil.Uint{0, MaxHistoryLimit + 1} {
		wantFilterErr(t, "limit", cl.Call(&page, "tally_getRecentTransactions", bad), CodeInvalidParams, "limit must be 1..500")
	}
}

func TestFindByReference(t *testing.T) {
	c := newFilterChain(t)
	_, cl := serveFilters(t, c)
	shop := c.addr(1)
	order := ref32("ORDER-7")
	// Blocks 1..3 each pay ORDER-7 twice (two payers); block 2 also pays
	// another order and refunds ORDER-7.
	var want []common.Hash
	for n := range 3 {
		a := c.call(0, 1, "transferWithReference", shop, big.NewInt(100), order)
		b := c.call(2, 1, "transferWithReference", shop, big.NewInt(200), order)
		txs := []*types.Transaction{a, b}
		want = append(want, a.Hash(), b.Hash())
		if n == 1 {
			other := c.call(3, 1, "transferWithReference", shop, big.NewInt(5), ref32("ORDER-8"))
			refund := c.call(1, 1, "refund", order, c.addr(0), big.NewInt(100))
			txs = append(txs, other, refund)
			want = append(want, refund.Hash())
		}
		c.block(txs...)
	}
	var page schema.ReferencePage
	if err := cl.Call(&page, "tally_findByReference", "ORDER-7", nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != len(want) || page.NextBlock != nil || page.Reference.Text == nil || *page.Reference.Text != "ORDER-7" {
		t.Fatalf("ORDER-7: %+v", page)
	}
	for i, m := range page.Items {
		if m.TxHash != want[i] {
			t.Fatalf("match %d is %s, want %s (chain order)", i, m.TxHash, want[i])
		}
	}
	first, refund := page.Items[0], page.Items[4]
	if first.Event != "PaymentReference" || *first.From != c.addr(0) || *first.To != shop || first.Amount.Text != "1.00 HKD" || first.BlockNumber != 1 {
		t.Fatalf("first match %+v", first)
	}
	if refund.Event != "Refund" || *refund.From != shop || *refund.To != c.addr(0) {
		t.Fatalf("refund match %+v", refund)
	}
	// The same reference in hex.
	if err := cl.Call(&page, "tally_findByReference", common.Hash(order).Hex(), nil, nil); err != nil || len(page.Items) != len(want) {
		t.Fatalf("by hex: %d items, %v", len(page.Items), err)
	}
	// Pages of 2: whole blocks, continued by nextBlock, none missed or repeated.
	var got []common.Hash
	var from *hexutil.Uint64
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		if err := cl.Call(&page, "tally_findByReference", "ORDER-7", from, hexutil.Uint(2)); err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Items {
			got = append(got, m.TxHash)
		}
		if page.NextBlock == nil {
			break
		}
		from = page.NextBlock
	}
	if len(got) != len(want) {
		t.Fatalf("paged: %d matches, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("paged match %d is %s, want %s", i, got[i], want[i])
		}
	}
	// A reference nobody used; one past the head.
	if err := cl.Call(&page, "tally_findByReference", "NO-SUCH", nil, nil); err != nil || len(page.Items) != 0 || page.NextBlock != nil {
		t.Fatalf("unused reference: %+v %v", page, err)
	}
	if err := cl.Call(&page, "tally_findByReference", "ORDER-7", hexutil.Uint64(99), nil); err != nil || len(page.Items) != 0 {
		t.Fatalf("from past the head: %+v %v", page, err)
	}
	for _, bad := range []struct {
		ref   string
		limit hexutil.Uint
		msg   string
	}{
		{strings.Repeat("x", 33), 1, "1..32 bytes of text, got 33 bytes"},
		{"", 1, "got 0 bytes"},
		{"0x" + strings.Repeat("zz", 32), 1, "invalid hex"},
		{"ORDER-7", 0, "limit must be 1..500"},
		{"ORDER-7", 501, "limit must be 1..500"},
	} {
		wantFilterErr(t, "reference "+bad.ref, cl.Call(&page, "tally_findByReference", bad.ref, nil, bad.limit), CodeInvalidParams, bad.msg)
	}
}

func TestParseReference(t *testing.T) {
	for _, c := range []struct {
		in   string
		want [32]byte
		err  bool
	}{
		{"ORDER-1", ref32("ORDER-1"), false},
		{strings.Repeat("a", 32), ref32(strings.Repeat("a", 32)), false},
		{"0x" + strings.Repeat("01", 32), [32]byte(common.FromHex(strings.Repeat("01", 32))), false},
		{"0x12", ref32("0x12"), false}, // short: text
		{strings.Repeat("a", 33), [32]byte{}, true},
		{"", [32]byte{}, true},
		{"0x" + strings.Repeat("g", 64), [32]byte{}, true},
	} {
		got, err := ParseReference(c.in)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("ParseReference(%q) = %x, %v", c.in, got, err)
		}
	}
	for _, c := range []struct {
		ref  [32]byte
		text string
	}{
		{ref32("ORDER-1234"), "ORDER-1234"},
		{ref32(`<img src=x onerror=alert(1)>`), `<img src=x onerror=alert(1)>`},
		{ref32("付款-7"), "付款-7"},
		{ref32("a\nb"), ""},
		{[32]byte{}, ""},
		{[32]byte{0: 0xff}, ""},
		{[32]byte{0: 'a', 5: 'b'}, ""}, // a zero inside: binary
	} {
		r := referenceOf(c.ref)
		if (c.text == "") != (r.Text == nil) || (r.Text != nil && *r.Text != c.text) || r.Hex != common.Hash(c.ref) {
			t.Errorf("referenceOf(%x) = %+v, want text %q", c.ref, r, c.text)
		}
	}
}

func TestGetValidatorsAndProposals(t *testing.T) {
	c := newFilterChain(t)
	_, cl := serveFilters(t, c)
	var v schema.Validators
	if err := cl.Call(&v, "tally_getValidators"); err != nil {
		t.Fatal(err)
	}
	if len(v.Validators) != 1 || v.Validators[0].Name != "dev-validator" || v.Validators[0].Address != c.val.Address() || v.Quorum != 1 ||
		len(v.Validators[0].PublicKey) != 33 || len(v.Pending) != 0 {
		t.Fatalf("validators %+v", v)
	}

	var page schema.ProposalPage
	if err := cl.Call(&page, "tally_getProposals", nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 0 || page.NextCursor != nil || len(page.Members) != 3 || page.Threshold != 2 {
		t.Fatalf("no proposals: %+v", page)
	}
	members := []*crypto.PrivateKey{devKeyT(t, genesis.DevGovernanceIndex), devKeyT(t, genesis.DevGovernanceIndex+1)}
	propose := func(asset uint32, bank common.Address) *types.Transaction {
		data, err := chain.GovernanceABI.Pack("proposeAddBank", chain.AssetAddress(asset), bank)
		if err != nil {
			t.Fatal(err)
		}
		return c.sign(members[0], chain.GovernanceAddress, nil, data)
	}
	bankA := devKeyT(t, genesis.DevBankAIndex).Address()
	var txs []*types.Transaction
	for i := range 5 {
		txs = append(txs, propose(1, common.Address{byte(i + 1)}))
	}
	txs = append(txs, propose(1, bankA)) // proposal 6
	c.block(txs...)
	vote, err := chain.GovernanceABI.Pack("vote", big.NewInt(6), true)
	if err != nil {
		t.Fatal(err)
	}
	c.block(c.sign(members[1], chain.GovernanceAddress, nil, vote))
	if err := cl.Call(&page, "tally_getProposals", nil, hexutil.Uint(4)); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 || page.NextCursor == nil || *page.NextCursor != 3 {
		t.Fatalf("first page: %d items, next %v", len(page.Items), page.NextCursor)
	}
	p6 := page.Items[0]
	if p6.ID != 6 || p6.Operation != "proposeAddBank" || p6.Status != "approved" || len(p6.Approvals) != 2 || p6.EffectiveHeight != 2+3 ||
		p6.Height != 1 || p6.Proposer != members[0].Address() || len(p6.Args) != 2 || p6.Args[0].Text != chain.AssetAddress(1).Hex()+" (HKD)" ||
		p6.Args[1].Value != bankA.Hex() {
		t.Fatalf("proposal 6: %+v", p6)
	}
	if page.Items[1].ID != 5 || page.Items[1].Status != "pending" || len(page.Items[1].Approvals) != 1 {
		t.Fatalf("proposal 5: %+v", page.Items[1])
	}
	if err := cl.Call(&page, "tally_getProposals", page.NextCursor, hexutil.Uint(4)); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].ID != 2 || page.Items[1].ID != 1 || page.NextCursor != nil {
		t.Fatalf("second page: %+v", page)
	}
	for _, bad := range []hexutil.Uint{0, MaxProposalLimit + 1} {
		wantFilterErr(t, "limit", cl.Call(&page, "tally_getProposals", nil, bad), CodeInvalidParams, "limit must be 1..100")
	}
	// The approved proposal is not a validator change: no pending change.
	if err := cl.Call(&v, "tally_getValidators"); err != nil || len(v.Pending) != 0 {
		t.Fatalf("validators after a bank proposal: %+v %v", v, err)
	}
}

// lastProposalID finds the highest id for any count of proposals.
func TestLastProposalID(t *testing.T) {
	c := newFilterChain(t)
	member := devKeyT(t, genesis.DevGovernanceIndex)
	total := 0
	for _, add := range []int{0, 1, 1, 2, 4, 9} {
		var txs []*types.Transaction
		for range add {
			total++
			data, err := chain.GovernanceABI.Pack("proposeAddBank", chain.AssetAddress(1), common.Address{byte(total)})
			if err != nil {
				t.Fatal(err)
			}
			txs = append(txs, c.sign(member, chain.GovernanceAddress, nil, data))
		}
		if len(txs) > 0 {
			c.block(txs...)
		}
		got, err := lastProposalID(c.db)
		if err != nil || got != uint64(total) {
			t.Fatalf("after %d proposals: last id %d, %v", total, got, err)
		}
	}
}

// poolChain is a filterChain whose pool holds one transaction.
type poolChain struct {
	*filterChain
	tx   *types.Transaction
	from common.Address
}

func (c *poolChain) PendingTx(h common.Hash) (*types.Transaction, common.Address, bool) {
	if h == c.tx.Hash() {
		return c.tx, c.from, true
	}
	return nil, common.Address{}, false
}

// A transaction the pool holds is decoded without block, status,
// transfers or events.
func TestDecodeTransactionPending(t *testing.T) {
	c := newFilterChain(t)
	tx := c.call(0, 1, "transferWithReference", c.addr(1), big.NewInt(5), ref32("ORDER-P"))
	srv, err := NewServer(&poolChain{filterChain: c, tx: tx, from: c.addr(0)}, DefaultLimits, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	cl := gethrpc.DialInProc(srv.rpc)
	t.Cleanup(cl.Close)
	var d schema.DecodedTx
	if err := cl.Call(&d, "tally_decodeTransaction", tx.Hash()); err != nil {
		t.Fatal(err)
	}
	if d.BlockNumber != nil || d.BlockHash != nil || d.TxIndex != nil || d.Status != nil || len(d.Transfers) != 0 || len(d.Events) != 0 ||
		d.Amount == nil || d.Amount.Text != "0.05 HKD" || d.Reference == nil || *d.Reference.Text != "ORDER-P" || d.From != c.addr(0) {
		t.Fatalf("pending payment decoded as %+v", d)
	}
}
