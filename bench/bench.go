package bench

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"golang.org/x/time/rate"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/wallet"
)

// Config describes one load run.
type Config struct {
	// RPC lists the JSON-RPC URLs of the nodes to load (one or more of a
	// cluster). Worker w sends to node w mod len(RPC) first, so the load
	// spreads, and every client fails over to the others (wallet.Client):
	// a node that fails during the run costs a failover, not the run.
	RPC []string
	// Keys are the funded senders.
	Keys []*crypto.PrivateKey
	// Txs is the number of transfers to send in total.
	Txs int
	// Batch is the number of transactions per JSON-RPC batch.
	Batch int
	// Workers is the number of concurrent submitters (each owns some senders).
	Workers int
	// Legacy signs EIP-155 legacy transactions instead of EIP-1559 ones.
	Legacy bool
	// Timeout bounds waiting for the last inclusion.
	Timeout time.Duration
	// Rate paces the submission at this many transactions per second over
	// all workers (a batch waits for its tokens, burst one batch); 0 sends
	// as fast as the node answers. Latency under a paced load is what a
	// user sees at that traffic; throughput needs the unpaced run.
	Rate float64
	// RateOfCeiling, when positive, paces at this fraction of R measured
	// just before the load (Rate is then ignored): 0.4 offers 0.4 R,
	// whatever the machine's speed that day. It needs CeilingTxs >= 0.
	RateOfCeiling float64
	// CeilingTxs is how many transactions Ceiling decodes and recovers
	// before and after the load, to give R in the same run (0:
	// DefaultCeilingTxs; negative: not measured).
	CeilingTxs int
	// FreshRecipients sends every transfer to an account that never held
	// anything (FreshRecipient), so the state grows by one account per
	// transfer (the memory figures of docs/benchmarks.md); otherwise each
	// sender pays one recipient of its own.
	FreshRecipients bool
}

// FreshRecipient is the recipient of transfer nonce of sender s under
// Config.FreshRecipients: distinct for every (s, nonce), in a range no key
// of the test mnemonic reaches.
func FreshRecipient(s int, nonce uint64) common.Address {
	v := new(big.Int).Lsh(big.NewInt(int64(0x7a11e000+s)), 64)
	return common.BigToAddress(v.Or(v, new(big.Int).SetUint64(nonce)))
}

// Report is the outcome of a run. Its JSON is one line per run in
// docs/benchmarks.md's tables; durations are in nanoseconds.
type Report struct {
	Txs        int           `json:"txs"`
	Rejected   int           `json:"rejected"`
	Included   int           `json:"included"`
	Failed     int           `json:"failedStatus"`
	FirstError string        `json:"firstError,omitempty"`
	SignTime   time.Duration `json:"signTimeNs"`
	SubmitTime time.Duration `json:"submitTimeNs"`
	TotalTime  time.Duration `json:"totalTimeNs"`
	TPS        float64       `json:"transfersPerSecond"`
	// OfferedRate is Config.Rate (0: unpaced); SubmitRate is what the
	// node admitted per second of submission.
	OfferedRate float64 `json:"offeredRate"`
	SubmitRate  float64 `json:"submitRate"`
	// CeilingBefore and CeilingAfter are R measured just before the load
	// and just after the last inclusion; Ceiling is their mean and Ratio
	// TPS / Ceiling (0 when not measured).
	CeilingBefore float64       `json:"ceilingBefore"`
	CeilingAfter  float64       `json:"ceilingAfter"`
	Ceiling       float64       `json:"ceiling"`
	Ratio         float64       `json:"ratio"`
	LatencyP50    time.Duration `json:"latencyP50Ns"`
	LatencyP90    time.Duration `json:"latencyP90Ns"`
	LatencyP99    time.Duration `json:"latencyP99Ns"`
	LatencyMax    time.Duration `json:"latencyMaxNs"`
	Blocks        int           `json:"blocks"`
	StartHeight   uint64        `json:"startHeight"`
	Nodes         int           `json:"nodes"`
	// ObservedBy is how the load tool learnt of applied blocks:
	// "newHeads" (a WebSocket subscription, stamped when the header
	// arrives) or "polling" (eth_blockNumber every 2 ms).
	ObservedBy string `json:"observedBy"`
}

// String renders the report as a table for people.
func (r *Report) String() string {
	var b strings.Builder
	row := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "%-15s "+format+"\n", append([]any{name}, args...)...)
	}
	row("transfers", "%d: %d included (%d with status 0), %d rejected at submission", r.Txs, r.Included, r.Failed, r.Rejected)
	if r.Ceiling > 0 {
		row("throughput", "%.0f transfers/s = %.2f R", r.TPS, r.Ratio)
		row("R (ceiling)", "%.0f/s decode + recover on all cores (before the load %.0f, after %.0f)", r.Ceiling, r.CeilingBefore, r.CeilingAfter)
	} else {
		row("throughput", "%.0f transfers/s (R not measured)", r.TPS)
	}
	if r.OfferedRate > 0 {
		row("offered", "%.0f/s (paced)", r.OfferedRate)
	} else {
		row("offered", "unpaced")
	}
	row("submit rate", "%.0f/s admitted", r.SubmitRate)
	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	row("latency", "submit to applied block: p50 %v, p90 %v, p99 %v, max %v", round(r.LatencyP50), round(r.LatencyP90), round(r.LatencyP99), round(r.LatencyMax))
	row("blocks", "%d with transfers, from height %d, %d node(s), applied blocks seen by %s", r.Blocks, r.StartHeight, r.Nodes, r.ObservedBy)
	row("time", "signing %v; submission %v; first submission to last inclusion %v",
		r.SignTime.Round(time.Millisecond), r.SubmitTime.Round(time.Millisecond), r.TotalTime.Round(time.Millisecond))
	return strings.TrimSuffix(b.String(), "\n")
}

type item struct {
	raw       hexutil.Bytes
	hash      common.Hash
	submitted time.Time
	included  time.Time
	// block and index are where the transaction was included.
	block uint64
	index int
}

// Run performs the load run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Keys) == 0 || cfg.Txs <= 0 || cfg.Batch <= 0 || len(cfg.RPC) == 0 {
		return nil, errors.New("bench: need an RPC URL, keys, txs > 0 and batch > 0")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Workers > len(cfg.Keys) {
		cfg.Workers = len(cfg.Keys)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	client, err := dial(ctx, cfg.RPC, 0)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	var chainID hexutil.Big
	if err := client.Call(ctx, &chainID, "eth_chainId"); err != nil {
		return nil, fmt.Errorf("bench: eth_chainId: %w", err)
	}
	var start hexutil.Uint64
	if err := client.Call(ctx, &start, "eth_blockNumber"); err != nil {
		return nil, fmt.Errorf("bench: eth_blockNumber: %w", err)
	}
	rep := &Report{Txs: cfg.Txs, StartHeight: uint64(start), OfferedRate: cfg.Rate, Nodes: len(cfg.RPC)}
	ceilingTxs := cfg.CeilingTxs
	if ceilingTxs == 0 {
		ceilingTxs = DefaultCeilingTxs
	}
	if ceilingTxs > 0 {
		if rep.CeilingBefore, err = Ceiling(ceilingTxs, cfg.Legacy); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}

	// Pre-sign: sender i gets every len(keys)-th transfer.
	t0 := time.Now()
	perSender, err := sign(ctx, client, cfg, chainID.ToInt())
	if err != nil {
		return nil, err
	}
	rep.SignTime = time.Since(t0)

	byHash := make(map[common.Hash]*item, cfg.Txs)
	for _, items := range perSender {
		for _, it := range items {
			byHash[it.hash] = it
		}
	}
	var mu sync.Mutex // guards item times
	follow, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followDone := make(chan error, 1)
	go func() { followDone <- followBlocks(follow, client, cfg.RPC[0], uint64(start), byHash, &mu, rep) }()

	// Submit: worker w owns senders w, w+W, ...; batches interleave them.
	if cfg.RateOfCeiling > 0 {
		if rep.CeilingBefore == 0 {
			return nil, errors.New("bench: a rate relative to R needs R measured (CeilingTxs >= 0)")
		}
		cfg.Rate = cfg.RateOfCeiling * rep.CeilingBefore
		rep.OfferedRate = cfg.Rate
	}
	var pace *rate.Limiter
	if cfg.Rate > 0 {
		pace = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Batch)
	}
	t1 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Workers)
	var rejected sync.Map
	for w := 0; w < cfg.Workers; w++ {
		var mine [][]*item
		for s := w; s < len(perSender); s += cfg.Workers {
			mine = append(mine, perSender[s])
		}
		wc, err := dial(ctx, cfg.RPC, w)
		if err != nil {
			return nil, err
		}
		defer wc.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := submit(ctx, wc, interleave(mine), cfg.Batch, pace, &mu, &rejected); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	rep.SubmitTime = time.Since(t1)
	var admitted int
	rejected.Range(func(any, any) bool { admitted--; return true })
	admitted += cfg.Txs
	rep.SubmitRate = float64(admitted) / rep.SubmitTime.Seconds()
	rejected.Range(func(k, v any) bool {
		rep.Rejected++
		if rep.FirstError == "" {
			rep.FirstError = v.(string)
		}
		delete(byHash, k.(common.Hash))
		return true
	})

	// Wait until every admitted transaction is in an applied block.
	deadline := time.After(cfg.Timeout)
	for {
		mu.Lock()
		pending := 0
		for _, it := range byHash {
			if it.included.IsZero() {
				pending++
			}
		}
		mu.Unlock()
		if pending == 0 {
			break
		}
		select {
		case <-deadline:
			return rep, fmt.Errorf("bench: %d transactions not included after %v", pending, cfg.Timeout)
		case err := <-followDone:
			return rep, fmt.Errorf("bench: following blocks: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopFollow()
	<-followDone
	finish(rep, byHash, t1)
	if ceilingTxs > 0 {
		if rep.CeilingAfter, err = Ceiling(ceilingTxs, cfg.Legacy); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		rep.Ceiling = (rep.CeilingBefore + rep.CeilingAfter) / 2
		rep.Ratio = rep.TPS / rep.Ceiling
	}
	return rep, checkReceipts(ctx, client, byHash, rep)
}

// dial connects to the nodes with failover, starting at node first mod n.
func dial(ctx context.Context, urls []string, first int) (*wallet.Client, error) {
	first %= len(urls)
	rotated := append(slices.Clone(urls[first:]), urls[:first]...)
	c, err := wallet.DialEndpoints(ctx, rotated, wallet.DefaultOptions())
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return c, nil
}

func sign(ctx context.Context, client *wallet.Client, cfg Config, chainID *big.Int) ([][]*item, error) {
	out := make([][]*item, len(cfg.Keys))
	var wg sync.WaitGroup
	errs := make([]error, len(cfg.Keys))
	for s, key := range cfg.Keys {
		var nonce hexutil.Uint64
		if err := client.Call(ctx, &nonce, "eth_getTransactionCount", key.Address(), "pending"); err != nil {
			return nil, fmt.Errorf("bench: nonce of %s: %w", key.Address(), err)
		}
		n := cfg.Txs / len(cfg.Keys)
		if s < cfg.Txs%len(cfg.Keys) {
			n++
		}
		wg.Add(1)
		go func(s int, key *crypto.PrivateKey, nonce uint64, n int) {
			defer wg.Done()
			to := common.BigToAddress(big.NewInt(int64(0x7a11e000 + s)))
			for i := 0; i < n; i++ {
				if cfg.FreshRecipients {
					to = FreshRecipient(s, nonce+uint64(i))
				}
				var inner types.TxData
				if cfg.Legacy {
					inner = &types.LegacyTx{Nonce: nonce + uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000, GasPrice: new(big.Int)}
				} else {
					inner = &types.DynamicFeeTx{ChainID: chainID, Nonce: nonce + uint64(i), To: &to, Value: big.NewInt(1), Gas: 21000}
				}
				tx, err := chain.SignTx(types.NewTx(inner), chainID, key)
				if err != nil {
					errs[s] = err
					return
				}
				raw, _ := tx.MarshalBinary()
				out[s] = append(out[s], &item{raw: raw, hash: tx.Hash()})
			}
		}(s, key, uint64(nonce), n)
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// interleave merges per-sender lists round robin, keeping each in order.
func interleave(lists [][]*item) []*item {
	var out []*item
	for i := 0; ; i++ {
		added := false
		for _, l := range lists {
			if i < len(l) {
				out = append(out, l[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

func submit(ctx context.Context, client *wallet.Client, items []*item, batch int, pace *rate.Limiter, mu *sync.Mutex, rejected *sync.Map) error {
	for len(items) > 0 {
		n := min(batch, len(items))
		if pace != nil {
			if err := pace.WaitN(ctx, n); err != nil {
				return fmt.Errorf("bench: pacing: %w", err)
			}
		}
		raws := make([][]byte, n)
		for i, it := range items[:n] {
			raws[i] = it.raw
		}
		now := time.Now()
		mu.Lock()
		for _, it := range items[:n] {
			it.submitted = now
		}
		mu.Unlock()
		_, errs, err := client.SendRawBatch(ctx, raws)
		if err != nil {
			return fmt.Errorf("bench: batch: %w", err)
		}
		for i, e := range errs {
			if e != nil {
				rejected.Store(items[i].hash, e.Error())
			}
		}
		items = items[n:]
	}
	return nil
}

// followBlocks stamps the inclusion time of each transaction seen in an
// applied block. It learns of each block from an eth_subscribe("newHeads")
// subscription on the first node (over WebSocket, on the JSON-RPC port),
// which the node sends once the block is applied: a transaction is
// stamped when its block's header arrives, not when a poll next asks.
// Polling for the head every 2 ms cost the node some 500 calls a second
// and added the poll's interval and two round trips to every latency.
// Without a subscription (a node or URL that does not serve one, or a
// subscription the node dropped) it polls eth_blockNumber every 2 ms.
func followBlocks(ctx context.Context, client *wallet.Client, url string, from uint64, byHash map[common.Hash]*item, mu *sync.Mutex, rep *Report) error {
	heads := make(chan *headNumber, 1024)
	var subErr <-chan error
	if sub, closeSub := subscribeHeads(ctx, url, heads); sub != nil {
		defer closeSub()
		subErr = sub.Err()
		rep.ObservedBy = "newHeads"
	} else {
		rep.ObservedBy = "polling"
	}
	next, head := from+1, from
	poll := subErr == nil // poll until the subscription's first header
	for {
		var tick <-chan time.Time
		if poll || subErr == nil {
			tick = time.After(2 * time.Millisecond)
		}
		var seen time.Time
		select {
		case <-ctx.Done():
			return nil
		case h := <-heads:
			seen = time.Now()
			head = max(head, uint64(h.Number))
		case <-subErr:
			subErr, rep.ObservedBy = nil, "polling" // dropped (too slow) or the node went away
			continue
		case <-tick:
			var n hexutil.Uint64
			if err := client.Call(ctx, &n, "eth_blockNumber"); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			seen = time.Now()
			head = max(head, uint64(n))
		}
		poll = false
		for ; next <= head; next++ {
			var blk *struct {
				Transactions []common.Hash `json:"transactions"`
			}
			if err := client.Call(ctx, &blk, "eth_getBlockByNumber", hexutil.Uint64(next), false); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if blk == nil {
				poll = true // a node behind the one that gave the head (failover): ask again
				break
			}
			mu.Lock()
			for j, h := range blk.Transactions {
				if it := byHash[h]; it != nil && it.included.IsZero() {
					it.included, it.block, it.index = seen, next, j
				}
			}
			if len(blk.Transactions) > 0 {
				rep.Blocks++
			}
			mu.Unlock()
		}
	}
}

// headNumber is the part of a newHeads notification followBlocks reads.
type headNumber struct {
	Number hexutil.Uint64 `json:"number"`
}

// subscribeHeads subscribes to newHeads on the node at url (http→ws,
// https→wss) and returns the subscription and what closes it, or nil
// when the node does not serve one.
func subscribeHeads(ctx context.Context, url string, heads chan<- *headNumber) (*gethrpc.ClientSubscription, func()) {
	ws, ok := wsURL(url)
	if !ok {
		return nil, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := gethrpc.DialContext(dctx, ws)
	if err != nil {
		return nil, nil
	}
	sub, err := c.EthSubscribe(dctx, heads, "newHeads")
	if err != nil {
		c.Close()
		return nil, nil
	}
	return sub, func() { sub.Unsubscribe(); c.Close() }
}

// wsURL is the WebSocket URL of the JSON-RPC endpoint at url (a node
// serves both on one port).
func wsURL(url string) (string, bool) {
	for _, p := range [][2]string{{"http://", "ws://"}, {"https://", "wss://"}, {"ws://", "ws://"}, {"wss://", "wss://"}} {
		if rest, ok := strings.CutPrefix(url, p[0]); ok {
			return p[1] + rest, true
		}
	}
	return "", false
}

func finish(rep *Report, byHash map[common.Hash]*item, firstSubmit time.Time) {
	lat := make([]time.Duration, 0, len(byHash))
	var last time.Time
	for _, it := range byHash {
		lat = append(lat, it.included.Sub(it.submitted))
		if it.included.After(last) {
			last = it.included
		}
	}
	slices.Sort(lat)
	rep.Included = len(lat)
	if len(lat) > 0 {
		rep.LatencyP50 = lat[len(lat)/2]
		rep.LatencyP90 = lat[min(len(lat)-1, len(lat)*90/100)]
		rep.LatencyP99 = lat[min(len(lat)-1, len(lat)*99/100)]
		rep.LatencyMax = lat[len(lat)-1]
		rep.TotalTime = last.Sub(firstSubmit)
		rep.TPS = float64(len(lat)) / rep.TotalTime.Seconds()
	}
}

// receiptOrder is the order in which checkReceipts asks for the receipts:
// by block, then position in it. A node decodes a whole block and its
// receipts to answer for one transaction and keeps a few recent ones
// decoded (state.block-cache-bytes, state.receipt-cache-bytes); asked in
// a map's random order, every receipt of a run of 80,000 transfers
// (about 200 blocks) found its block evicted and decoded it again, so
// that the check took longer than the load.
func receiptOrder(byHash map[common.Hash]*item) []common.Hash {
	items := make([]*item, 0, len(byHash))
	for _, it := range byHash {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.block, b.block), cmp.Compare(a.index, b.index), bytes.Compare(a.hash[:], b.hash[:]))
	})
	hashes := make([]common.Hash, len(items))
	for i, it := range items {
		hashes[i] = it.hash
	}
	return hashes
}

// checkReceipts fetches every receipt in batches and counts status 0. A
// receipt a node does not have yet (it is behind the node that showed the
// block, after a failover) is asked for again until ctx ends.
func checkReceipts(ctx context.Context, client *wallet.Client, byHash map[common.Hash]*item, rep *Report) error {
	hashes := receiptOrder(byHash)
	for len(hashes) > 0 {
		n := min(1000, len(hashes))
		elems := make([]gethrpc.BatchElem, n)
		res := make([]*struct {
			Status hexutil.Uint64 `json:"status"`
		}, n)
		for i := range elems {
			elems[i] = gethrpc.BatchElem{Method: "eth_getTransactionReceipt", Args: []any{hashes[i]}, Result: &res[i]}
		}
		if err := client.BatchCall(ctx, elems); err != nil {
			return fmt.Errorf("bench: receipts: %w", err)
		}
		var again []common.Hash
		for i, e := range elems {
			switch {
			case e.Error != nil:
				return fmt.Errorf("bench: receipt %s: %w", hashes[i], e.Error)
			case res[i] == nil:
				again = append(again, hashes[i])
			case res[i].Status != 1:
				rep.Failed++
			}
		}
		hashes = append(again, hashes[n:]...)
		if len(again) == n {
			select {
			case <-ctx.Done():
				return fmt.Errorf("bench: no receipt for %d included transactions, e.g. %s: %w", len(again), again[0], ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}
