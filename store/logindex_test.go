package store

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// Dev asset ids.
const (
	logTestCNY uint32 = 0
	logTestHKD uint32 = 1
)

// logTestSysTx signs a call of an asset facade's operation.
func (e *env) logTestSysTx(key *crypto.PrivateKey, nonce uint64, asset uint32, method string, args ...any) *types.Transaction {
	e.t.Helper()
	data, err := chain.AssetABI.Pack(method, args...)
	if err != nil {
		e.t.Fatalf("pack %s: %v", method, err)
	}
	to := chain.AssetAddress(asset)
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: e.chainID, Nonce: nonce, To: &to, Gas: 100_000, Data: data}), e.chainID, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return tx
}

// logTestBlock builds and applies a block of txs, all of which must be included.
func (e *env) logTestBlock(txs ...*types.Transaction) *Applied {
	e.t.Helper()
	b := e.build(txs...)
	if len(b.Dropped) != 0 {
		e.t.Fatalf("dropped %+v", b.Dropped)
	}
	a, err := e.apply(b.Block)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// eventName names a log for expectations: "block:Event@SYMBOL".
func eventName(l *types.Log) string {
	name := "?"
	for _, ev := range chain.AssetABI.Events {
		if len(l.Topics) > 0 && ev.ID == l.Topics[0] {
			name = ev.Name
		}
	}
	sym := map[common.Address]string{chain.AssetAddress(logTestCNY): "CNY", chain.AssetAddress(logTestHKD): "HKD"}[l.Address]
	return fmt.Sprintf("%d:%s@%s", l.BlockNumber, name, sym)
}

func eventNames(logs []*types.Log) []string {
	out := make([]string, len(logs))
	for i, l := range logs {
		out[i] = eventName(l)
	}
	return out
}

func TestFilterLogs(t *testing.T) {
	e := newEnv(t)
	a := func(i int) common.Address { return e.keys[i].Address() }
	bank, err := genesis.DevKey(genesis.DevBankBIndex)
	if err != nil {
		t.Fatal(err)
	}
	ref1, ref2 := common.Hash{0x01}, common.Hash{0x02}
	cny, hkd := chain.AssetAddress(logTestCNY), chain.AssetAddress(logTestHKD)
	ev := func(name string) common.Hash { return chain.AssetABI.Events[name].ID }
	topic := func(a common.Address) common.Hash { return common.BytesToHash(a[:]) }
	oneCNY := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

	// Block 1: an HKD transfer, a CNY payment with a reference.
	e.logTestBlock(
		e.logTestSysTx(e.keys[0], 0, logTestHKD, "transfer", a(1), big.NewInt(100)),
		e.logTestSysTx(e.keys[2], 0, logTestCNY, "transferWithReference", a(3), oneCNY, [32]byte(ref1)),
	)
	// Block 2: a native transfer: no logs.
	e.logTestBlock(e.transfer(0, 1, a(1), 5))
	// Block 3: a CNY transfer, an HKD payment, and a failing transfer
	// (status 0: no logs).
	b3 := e.logTestBlock(
		e.logTestSysTx(e.keys[1], 0, logTestCNY, "transfer", a(4), big.NewInt(5)),
		e.logTestSysTx(e.keys[4], 0, logTestHKD, "transferWithReference", a(3), big.NewInt(50), [32]byte(ref2)),
		e.logTestSysTx(e.keys[5], 0, logTestHKD, "transfer", a(1), new(big.Int).Lsh(big.NewInt(1), 128)),
	)
	if b3.Receipts[2].Status != types.ReceiptStatusFailed {
		t.Fatal("the over-balance transfer should fail")
	}
	// Block 4: a bank mints HKD.
	e.logTestBlock(e.logTestSysTx(bank, 0, logTestHKD, "mint", a(5), big.NewInt(1000), [32]byte{0xb0}))
	// Block 5: a withdrawal request (its event has three topics, not four).
	e.logTestBlock(e.logTestSysTx(e.keys[6], 0, logTestHKD, "requestWithdrawal", big.NewInt(200), [32]byte{0xfa}))
	// Block 6: empty.
	e.logTestBlock()
	head, _ := e.db.Head()

	all := []string{
		"1:Transfer@HKD", "1:Transfer@CNY", "1:PaymentReference@CNY",
		"3:Transfer@CNY", "3:Transfer@HKD", "3:PaymentReference@HKD",
		"4:Transfer@HKD", "4:Minted@HKD",
		"5:Transfer@HKD", "5:WithdrawalRequested@HKD",
	}
	hkdOnly := []string{"1:Transfer@HKD", "3:Transfer@HKD", "3:PaymentReference@HKD", "4:Transfer@HKD", "4:Minted@HKD", "5:Transfer@HKD", "5:WithdrawalRequested@HKD"}
	cases := []struct {
		name    string
		q       LogQuery
		want    []string
		wantErr error
	}{
		{name: "everything", q: LogQuery{ToBlock: head.Number}, want: all},
		{name: "to beyond head", q: LogQuery{ToBlock: 1 << 40}, want: all},
		{name: "address", q: LogQuery{ToBlock: head.Number, Addresses: []common.Address{hkd}}, want: hkdOnly},
		{name: "addresses OR", q: LogQuery{ToBlock: head.Number, Addresses: []common.Address{cny, hkd}}, want: all},
		{name: "topic0", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{{ev("PaymentReference")}}},
			want: []string{"1:PaymentReference@CNY", "3:PaymentReference@HKD"}},
		{name: "topic0 OR", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{{ev("Minted"), ev("WithdrawalRequested")}}},
			want: []string{"4:Minted@HKD", "5:WithdrawalRequested@HKD"}},
		{name: "positions AND with wildcard", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{{ev("Transfer")}, nil, {topic(a(3))}}},
			want: []string{"1:Transfer@CNY", "3:Transfer@HKD"}},
		{name: "address AND topic", q: LogQuery{ToBlock: head.Number, Addresses: []common.Address{hkd}, Topics: [][]common.Hash{nil, {topic(a(0))}}},
			want: []string{"1:Transfer@HKD"}},
		// Block 3 holds a CNY log and a PaymentReference, on different
		// logs: the index offers it, the exact filter drops it.
		{name: "address and topic on different logs", q: LogQuery{ToBlock: head.Number, Addresses: []common.Address{cny}, Topics: [][]common.Hash{{ev("PaymentReference")}}},
			want: []string{"1:PaymentReference@CNY"}},
		{name: "range", q: LogQuery{FromBlock: 3, ToBlock: 4, Topics: [][]common.Hash{{ev("Transfer")}}},
			want: []string{"3:Transfer@CNY", "3:Transfer@HKD", "4:Transfer@HKD"}},
		{name: "single block", q: LogQuery{FromBlock: 4, ToBlock: 4}, want: []string{"4:Transfer@HKD", "4:Minted@HKD"}},
		{name: "last position only", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{nil, nil, nil, {topic(a(3))}}},
			want: []string{"1:PaymentReference@CNY", "3:PaymentReference@HKD"}},
		{name: "four wildcards need four topics", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{nil, nil, nil, nil}},
			want: []string{"1:PaymentReference@CNY", "3:PaymentReference@HKD", "4:Minted@HKD"}},
		{name: "fewer topics than positions", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{{ev("WithdrawalRequested")}, nil, nil, nil}},
			want: []string{}},
		{name: "three positions fit", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{{ev("WithdrawalRequested")}, nil, {topic(a(6))}}},
			want: []string{"5:WithdrawalRequested@HKD"}},
		{name: "unknown address", q: LogQuery{ToBlock: head.Number, Addresses: []common.Address{{0xde, 0xad}}}, want: []string{}},
		{name: "unknown topic", q: LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{{ev("Transfer")}, {common.Hash{0xee}}}}, want: []string{}},
		{name: "blocks without logs", q: LogQuery{FromBlock: 2, ToBlock: 2}, want: []string{}},
		{name: "range past the logs", q: LogQuery{FromBlock: 6, ToBlock: head.Number}, want: []string{}},
		{name: "cap reached, not exceeded", q: LogQuery{ToBlock: head.Number, MaxResults: len(all)}, want: all},
		{name: "cap exceeded", q: LogQuery{ToBlock: head.Number, MaxResults: len(all) - 1}, wantErr: ErrTooManyLogs},
		{name: "cap exceeded early", q: LogQuery{ToBlock: head.Number, MaxResults: 2}, wantErr: ErrTooManyLogs},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs, err := e.db.FilterLogs(context.Background(), c.q)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) || logs != nil {
					t.Fatalf("got %v, %v; want error %v", eventNames(logs), err, c.wantErr)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("limit of %d", c.q.MaxResults)) {
					t.Fatalf("error %q does not name the limit", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := eventNames(logs); !slices.Equal(got, c.want) {
				t.Fatalf("got %v\nwant %v", got, c.want)
			}
		})
	}

	// The index, not a scan, chooses the blocks whose receipts are read.
	for _, c := range []struct {
		q    LogQuery
		want []uint64
	}{
		{LogQuery{ToBlock: head.Number}, []uint64{1, 3, 4, 5}},
		{LogQuery{FromBlock: 2, ToBlock: 4}, []uint64{3, 4}},
		{LogQuery{ToBlock: head.Number, Addresses: []common.Address{cny}}, []uint64{1, 3}},
		{LogQuery{ToBlock: head.Number, Addresses: []common.Address{cny}, Topics: [][]common.Hash{{ev("PaymentReference")}}}, []uint64{1, 3}},
		{LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{{ev("Minted"), ev("WithdrawalRequested")}}}, []uint64{4, 5}},
		{LogQuery{ToBlock: head.Number, Topics: [][]common.Hash{nil, nil, {topic(a(3))}}}, []uint64{1, 3}},
		{LogQuery{ToBlock: head.Number, Addresses: []common.Address{cny}, Topics: [][]common.Hash{{ev("Minted")}}}, nil},
	} {
		got, err := e.db.logBlocks(context.Background(), &c.q)
		if err != nil || !slices.Equal(got, c.want) {
			t.Fatalf("candidate blocks of %+v: %v %v, want %v", c.q, got, err, c.want)
		}
	}

	// Logs carry their position, as eth_getLogs reports it.
	logs, err := e.db.FilterLogs(context.Background(), LogQuery{FromBlock: 3, ToBlock: 3, Topics: [][]common.Hash{{ev("PaymentReference")}}})
	if err != nil || len(logs) != 1 {
		t.Fatalf("%v %v", logs, err)
	}
	blk3, _ := e.db.BlockByNumber(3)
	if l := logs[0]; l.TxHash != blk3.Txs[1].Hash() || l.TxIndex != 1 || l.Index != 2 || l.BlockHash != blk3.Hash() || l.Topics[1] != ref2 {
		t.Fatalf("log position %+v", l)
	}

	if _, err := e.db.FilterLogs(context.Background(), LogQuery{FromBlock: 4, ToBlock: 3}); err == nil || !strings.Contains(err.Error(), "fromBlock 4 is after toBlock 3") {
		t.Fatalf("inverted range: %v", err)
	}
	if _, err := e.db.FilterLogs(context.Background(), LogQuery{ToBlock: 1, Topics: make([][]common.Hash, 5)}); err == nil {
		t.Fatal("five topic positions accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.db.FilterLogs(ctx, LogQuery{ToBlock: head.Number}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled query: %v", err)
	}

	// Pages split between blocks and together give every log once.
	var paged []string
	for from := uint64(0); from <= head.Number; {
		logs, through, err := e.db.FilterLogsPage(context.Background(), LogQuery{FromBlock: from, ToBlock: head.Number, MaxResults: 3})
		if err != nil {
			t.Fatal(err)
		}
		if through < from || through > head.Number {
			t.Fatalf("page from %d went through %d", from, through)
		}
		for _, l := range logs {
			if l.BlockNumber > through {
				t.Fatalf("page through %d holds a log of block %d", through, l.BlockNumber)
			}
		}
		if len(logs) >= 3+2 { // no block here has more than 3 logs
			t.Fatalf("page of %d logs", len(logs))
		}
		paged = append(paged, eventNames(logs)...)
		from = through + 1
	}
	if !slices.Equal(paged, all) {
		t.Fatalf("paged %v\nwant %v", paged, all)
	}

	// The index is in the committed batch: it survives a reopen.
	e.db.Close()
	e.open()
	logs, err = e.db.FilterLogs(context.Background(), LogQuery{ToBlock: head.Number, Addresses: []common.Address{hkd}})
	if err != nil || !slices.Equal(eventNames(logs), hkdOnly) {
		t.Fatalf("after reopen: %v %v", eventNames(logs), err)
	}
}

// bruteForceLogs filters every receipt of blocks from..to, following
// go-ethereum's filterLogs independently of LogQuery.Matches.
func bruteForceLogs(t *testing.T, db *DB, from, to uint64, addrs []common.Address, topics [][]common.Hash) []*types.Log {
	t.Helper()
	out := []*types.Log{}
	head, _ := db.Head()
	for n := from; n <= min(to, head.Number); n++ {
		b, err := db.BlockByNumber(n)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := db.Receipts(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
		logs:
			for _, l := range r.Logs {
				if len(addrs) > 0 && !slices.Contains(addrs, l.Address) {
					continue
				}
				if len(topics) > len(l.Topics) {
					continue
				}
				for i, sub := range topics {
					if len(sub) > 0 && !slices.Contains(sub, l.Topics[i]) {
						continue logs
					}
				}
				out = append(out, l)
			}
		}
	}
	return out
}

// TestFilterLogsMatchesBruteForce checks on random blocks and random
// queries that the index gives exactly the logs a scan of every receipt gives.
func TestFilterLogsMatchesBruteForce(t *testing.T) {
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(7, 11))
	const accounts = 8
	refs := []common.Hash{{0x01}, {0x02}, {0x03}}
	nonces := make([]uint64, accounts)
	for range 40 {
		var txs []*types.Transaction
		for range rng.IntN(5) {
			from, to := rng.IntN(accounts), rng.IntN(accounts)
			asset := uint32(rng.IntN(2))
			switch rng.IntN(3) {
			case 0:
				txs = append(txs, e.logTestSysTx(e.keys[from], nonces[from], asset, "transfer", e.keys[to].Address(), big.NewInt(1+rng.Int64N(10))))
			case 1:
				txs = append(txs, e.logTestSysTx(e.keys[from], nonces[from], asset, "transferWithReference", e.keys[to].Address(), big.NewInt(1+rng.Int64N(10)), [32]byte(refs[rng.IntN(len(refs))])))
			case 2:
				txs = append(txs, e.transfer(from, nonces[from], e.keys[to].Address(), 1))
			}
			nonces[from]++
		}
		e.logTestBlock(txs...)
	}
	head, _ := e.db.Head()

	// Values to ask for: some that occur, one that never does.
	addrPool := []common.Address{chain.AssetAddress(logTestCNY), chain.AssetAddress(logTestHKD), {0x77}}
	topicPool := []common.Hash{chain.AssetABI.Events["Transfer"].ID, chain.AssetABI.Events["PaymentReference"].ID, {0x99}}
	topicPool = append(topicPool, refs...)
	for i := range accounts {
		topicPool = append(topicPool, common.BytesToHash(e.keys[i].Address().Bytes()))
	}
	pick := func(pool []common.Hash) []common.Hash {
		var out []common.Hash
		for range rng.IntN(3) { // 0: wildcard
			out = append(out, pool[rng.IntN(len(pool))])
		}
		return out
	}
	nonEmpty := 0
	for i := range 500 {
		from := rng.Uint64N(head.Number + 2)
		to := from + rng.Uint64N(head.Number+2-from)
		var addrs []common.Address
		for range rng.IntN(3) {
			addrs = append(addrs, addrPool[rng.IntN(len(addrPool))])
		}
		topics := make([][]common.Hash, rng.IntN(MaxLogTopics+1))
		for j := range topics {
			topics[j] = pick(topicPool)
		}
		got, err := e.db.FilterLogs(context.Background(), LogQuery{FromBlock: from, ToBlock: to, Addresses: addrs, Topics: topics})
		if err != nil {
			t.Fatal(err)
		}
		want := bruteForceLogs(t, e.db, from, to, addrs, topics)
		if !slices.EqualFunc(got, want, func(a, b *types.Log) bool { return a.BlockNumber == b.BlockNumber && a.Index == b.Index }) {
			t.Fatalf("query %d (blocks %d..%d, addresses %v, topics %v): index gave %d logs, scan %d", i, from, to, addrs, topics, len(got), len(want))
		}
		if len(want) > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 100 {
		t.Fatalf("only %d of 500 random queries matched anything: the check is too weak", nonEmpty)
	}
}
