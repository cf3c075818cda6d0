package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/store"
)

// maxFilterValues bounds the addresses, and the topics at one position, of
// a query: go-ethereum's defaults (LogQueryLimit and maxSubTopics, both
// 1000), so a query cannot make the node seek the index without bound.
const maxFilterValues = 1000

// codeLogLimit is EIP-1474's "limit exceeded", which go-ethereum and the
// hosted providers answer a query over their result bound with; client
// libraries (viem, ethers) react to it by splitting the block range.
const codeLogLimit = -32005

// FilterCriteria is the argument of eth_getLogs, eth_newFilter and
// eth_subscribe("logs"): go-ethereum's ethereum.FilterQuery with its JSON
// form. A nil FromBlock or ToBlock means "latest".
type FilterCriteria struct {
	BlockHash *common.Hash
	FromBlock *gethrpc.BlockNumber
	ToBlock   *gethrpc.BlockNumber
	Addresses []common.Address
	Topics    [][]common.Hash
}

// UnmarshalJSON accepts what go-ethereum's filters.FilterCriteria accepts:
// "address" a single address or an array; "topics" an array whose items
// are null (any topic), a topic, or an array of topics (any of them; a null
// in it makes the position match any topic); "blockHash" exclusive of
// "fromBlock"/"toBlock".
func (c *FilterCriteria) UnmarshalJSON(data []byte) error {
	var raw struct {
		BlockHash *common.Hash         `json:"blockHash"`
		FromBlock *gethrpc.BlockNumber `json:"fromBlock"`
		ToBlock   *gethrpc.BlockNumber `json:"toBlock"`
		Addresses any                  `json:"address"`
		Topics    []any                `json:"topics"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*c = FilterCriteria{}
	if raw.BlockHash != nil && (raw.FromBlock != nil || raw.ToBlock != nil) {
		return errors.New("cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other")
	}
	c.BlockHash, c.FromBlock, c.ToBlock = raw.BlockHash, raw.FromBlock, raw.ToBlock

	switch addrs := raw.Addresses.(type) {
	case nil:
	case string:
		a, err := decodeFilterHex(addrs, common.AddressLength)
		if err != nil {
			return fmt.Errorf("invalid address: %w", err)
		}
		c.Addresses = []common.Address{common.BytesToAddress(a)}
	case []any:
		for i, item := range addrs {
			s, ok := item.(string)
			if !ok {
				return fmt.Errorf("non-string address at index %d", i)
			}
			a, err := decodeFilterHex(s, common.AddressLength)
			if err != nil {
				return fmt.Errorf("invalid address at index %d: %w", i, err)
			}
			c.Addresses = append(c.Addresses, common.BytesToAddress(a))
		}
	default:
		return errors.New("invalid addresses in query")
	}

	if len(raw.Topics) > store.MaxLogTopics {
		return fmt.Errorf("exceed max topics: %d positions, at most %d", len(raw.Topics), store.MaxLogTopics)
	}
	if len(raw.Topics) > 0 {
		c.Topics = make([][]common.Hash, len(raw.Topics))
	}
	for i, item := range raw.Topics {
		switch t := item.(type) {
		case nil: // any topic
		case string:
			h, err := decodeFilterHex(t, common.HashLength)
			if err != nil {
				return fmt.Errorf("invalid topic at position %d: %w", i, err)
			}
			c.Topics[i] = []common.Hash{common.BytesToHash(h)}
		case []any:
			if len(t) > maxFilterValues {
				return fmt.Errorf("exceed max topics: %d at position %d, at most %d", len(t), i, maxFilterValues)
			}
			for _, sub := range t {
				if sub == nil { // go-ethereum: a null alternative matches anything
					c.Topics[i] = nil
					break
				}
				s, ok := sub.(string)
				if !ok {
					return fmt.Errorf("invalid topic(s) at position %d", i)
				}
				h, err := decodeFilterHex(s, common.HashLength)
				if err != nil {
					return fmt.Errorf("invalid topic at position %d: %w", i, err)
				}
				c.Topics[i] = append(c.Topics[i], common.BytesToHash(h))
			}
		default:
			return fmt.Errorf("invalid topic(s) at position %d", i)
		}
	}
	return nil
}

func decodeFilterHex(s string, size int) ([]byte, error) {
	b, err := hexutil.Decode(s)
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, fmt.Errorf("hex has invalid length %d after decoding; expected %d", len(b), size)
	}
	return b, nil
}

// checkValues bounds the work one query can ask of the index.
func (c *FilterCriteria) checkValues() error {
	if len(c.Addresses) > maxFilterValues {
		return invalidParams("exceed max addresses or topics per search position: %d addresses, at most %d", len(c.Addresses), maxFilterValues)
	}
	if len(c.Topics) > store.MaxLogTopics {
		return invalidParams("exceed max topics: %d positions, at most %d", len(c.Topics), store.MaxLogTopics)
	}
	for i, pos := range c.Topics {
		if len(pos) > maxFilterValues {
			return invalidParams("exceed max addresses or topics per search position: %d topics at position %d, at most %d", len(pos), i, maxFilterValues)
		}
	}
	return nil
}

// FilterAPI serves the log and filter methods of the eth namespace:
// eth_getLogs, eth_newFilter, eth_newBlockFilter, eth_getFilterChanges,
// eth_getFilterLogs, eth_uninstallFilter and eth_subscribe("logs"). It is
// registered under "eth" next to EthAPI (go-ethereum's server merges the
// methods) because the installed filters are state that outlives a call.
//
// An installed filter is a cursor, not a buffer: it remembers the first
// block it has not reported, and each poll reads the blocks since then
// through the log index. So a filter costs no goroutine, no subscription to
// the head feed and no memory that grows while nobody polls it, and a poll
// covers at most MaxLogBlockRange blocks (the rest come with the next one).
type FilterAPI struct {
	b      Backend
	limits Limits
	now    func() time.Time
	// halted answers every method while the node is halted (see EthAPI).
	halted func() error
	// subs bounds each client's subscriptions, heavy the log reads (nil:
	// unbounded, for an API used without a Server).
	subs  *subQuota
	heavy *heavyGate
	// pending is the feed of admitted transactions (PendingFeeder).
	pending *PendingFeed

	mu      sync.Mutex
	filters map[gethrpc.ID]*installedFilter
	// byClient counts the filters of each client address (MaxFiltersPerIP).
	byClient map[netip.Prefix]int
}

// installedFilter is one eth_newFilter, eth_newBlockFilter or
// eth_newPendingTransactionFilter.
type installedFilter struct {
	// crit is nil for a block or pending-transaction filter.
	crit *FilterCriteria
	// pending marks a pending-transaction filter: next is then a cursor
	// into the PendingFeed, and fullTx asks for transactions, not hashes.
	pending, fullTx bool
	// from and to bound a log filter's blocks (its fromBlock and toBlock;
	// "latest" leaves them open).
	from, to uint64

	// mu serialises polls, so that two concurrent polls never report the
	// same block twice. It guards next.
	mu sync.Mutex
	// next is the first block not yet reported.
	next uint64

	// lastUsed is guarded by FilterAPI.mu.
	lastUsed time.Time
	// owner is the address of the client that installed it (hasOwner is
	// false for a client that is not on IP).
	owner    netip.Prefix
	hasOwner bool
}

// NewFilterAPI returns the filter service over b. Zero log and filter
// bounds in limits take DefaultLimits' values.
func NewFilterAPI(b Backend, limits Limits) *FilterAPI {
	return &FilterAPI{b: b, limits: limits.withDefaults(), now: time.Now, halted: haltCheck(b), pending: pendingFeedOf(b),
		filters: make(map[gethrpc.ID]*installedFilter), byClient: make(map[netip.Prefix]int)}
}

// headNumber is the height of the last applied block.
func (api *FilterAPI) headNumber() uint64 {
	h, _ := api.b.State().Head()
	return h.Number
}

// blockNumber resolves a block number or tag; nil is "latest". As
// everywhere in Tally, every tag but "earliest" is the head: an applied
// block is final, and nothing is pending outside the mempool.
func blockNumber(n *gethrpc.BlockNumber, head uint64) (uint64, error) {
	if n == nil {
		return head, nil
	}
	switch *n {
	case gethrpc.LatestBlockNumber, gethrpc.PendingBlockNumber, gethrpc.SafeBlockNumber, gethrpc.FinalizedBlockNumber:
		return head, nil
	case gethrpc.EarliestBlockNumber:
		return 0, nil
	}
	if *n < 0 {
		return 0, invalidParams("unsupported block tag %d", *n)
	}
	return uint64(*n), nil
}

// isLatest reports whether n leaves a filter's range open at the head.
func isLatest(n *gethrpc.BlockNumber) bool {
	if n == nil {
		return true
	}
	switch *n {
	case gethrpc.LatestBlockNumber, gethrpc.PendingBlockNumber, gethrpc.SafeBlockNumber, gethrpc.FinalizedBlockNumber:
		return true
	}
	return false
}

// logQuery turns crit into a query over applied blocks: the block of
// blockHash, or fromBlock..toBlock. As in go-ethereum, a range reaching
// past the head is an error rather than an answer cut at the head: a
// client that learnt a height from another node of the cluster must not
// take "no logs" for blocks this node has not applied yet.
func (api *FilterAPI) logQuery(crit *FilterCriteria) (q store.LogQuery, err error) {
	if err := crit.checkValues(); err != nil {
		return q, err
	}
	q = store.LogQuery{Addresses: crit.Addresses, Topics: crit.Topics, MaxResults: api.limits.MaxLogResults}
	if crit.BlockHash != nil {
		if crit.FromBlock != nil || crit.ToBlock != nil {
			return q, invalidParams("can't specify fromBlock/toBlock with blockHash")
		}
		n, err := api.b.State().BlockNumberByHash(*crit.BlockHash)
		if errors.Is(err, store.ErrNotFound) {
			return q, &Error{Code: CodeServerError, Msg: fmt.Sprintf("unknown block %s", crit.BlockHash)}
		}
		if err != nil {
			return q, err
		}
		q.FromBlock, q.ToBlock = n, n
		return q, nil
	}
	head := api.headNumber()
	if q.FromBlock, err = blockNumber(crit.FromBlock, head); err != nil {
		return q, err
	}
	if q.ToBlock, err = blockNumber(crit.ToBlock, head); err != nil {
		return q, err
	}
	if q.FromBlock > q.ToBlock {
		return q, invalidParams("invalid block range params: fromBlock %d is after toBlock %d (head %d)", q.FromBlock, q.ToBlock, head)
	}
	if q.ToBlock > head {
		return q, invalidParams("block range extends beyond current head block: toBlock %d, head %d", q.ToBlock, head)
	}
	if n := q.ToBlock - q.FromBlock + 1; n > api.limits.MaxLogBlockRange {
		return q, invalidParams("exceed maximum block range: %d blocks requested (%d..%d), at most %d; split the range",
			n, q.FromBlock, q.ToBlock, api.limits.MaxLogBlockRange)
	}
	return q, nil
}

// filterLogs runs q, answering a query over the result bound with
// codeLogLimit and the words the hosted providers use, and so a query
// whose reply would pass the response bound (Limits.MaxResponseBytes, or
// over HTTP what the request has left of MaxBatchResponseBytes).
func (api *FilterAPI) filterLogs(ctx context.Context, method string, q store.LogQuery) ([]*types.Log, error) {
	logs, err := api.b.State().FilterLogs(ctx, q)
	if errors.Is(err, store.ErrTooManyLogs) {
		api.limits.refused("http.max-log-results")
		return nil, &Error{Code: codeLogLimit, Msg: fmt.Sprintf("query returned more than %d results; narrow the block range (%d..%d) or the addresses and topics",
			q.MaxResults, q.FromBlock, q.ToBlock)}
	}
	if err != nil {
		return nil, err
	}
	if err := api.chargeLogs(ctx, method, q.FromBlock, q.ToBlock, logs, true); err != nil {
		return nil, err
	}
	return logs, nil
}

// chargeLogs refuses logs whose reply passes one call's bound (with
// perCall), and takes their bytes from the request's reply budget.
func (api *FilterAPI) chargeLogs(ctx context.Context, method string, from, to uint64, logs []*types.Log, perCall bool) error {
	size := 2
	for _, l := range logs {
		size += logJSONSize(l)
	}
	if limit := api.limits.MaxResponseBytes; perCall && size > limit {
		api.limits.refused("http.max-response-bytes")
		return &Error{Code: codeLogLimit, Msg: fmt.Sprintf("query returned more than %d bytes (http.max-response-bytes); narrow the block range (%d..%d) or the addresses and topics",
			limit, from, to)}
	}
	return api.heavy.charge(ctx, method, size)
}

// logJSONSize bounds the bytes of a log in go-ethereum's JSON form: the
// fixed fields (addresses, hashes, numbers as hex and their names) take
// under 400 bytes, each topic 69 and the data two hex digits a byte.
func logJSONSize(l *types.Log) int { return 400 + 69*len(l.Topics) + 2*len(l.Data) }

// GetLogs serves eth_getLogs: the logs of applied blocks matching crit, in
// chain order. A range covers at most MaxLogBlockRange blocks and may match
// at most MaxLogResults logs; both bounds are errors, never a silently cut
// answer.
func (api *FilterAPI) GetLogs(ctx context.Context, crit FilterCriteria) ([]*types.Log, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	return api.getLogs(ctx, "eth_getLogs", &crit)
}

// getLogs is eth_getLogs as a heavy read.
func (api *FilterAPI) getLogs(ctx context.Context, method string, crit *FilterCriteria) ([]*types.Log, error) {
	q, err := api.logQuery(crit)
	if err != nil {
		return nil, err
	}
	done, err := api.heavy.enter(ctx, method)
	if err != nil {
		return nil, err
	}
	defer done()
	return api.filterLogs(ctx, method, q)
}

// install registers f, installed by the client of ctx, under a new id,
// first dropping the filters that timed out, so that abandoned ones never
// keep a client from installing. A client address may hold at most
// MaxFiltersPerIP of the MaxFilters filters, so one client cannot take
// them all.
func (api *FilterAPI) install(ctx context.Context, f *installedFilter) (gethrpc.ID, error) {
	f.owner, f.hasOwner = clientKey(gethrpc.PeerInfoFromContext(ctx).RemoteAddr)
	api.mu.Lock()
	defer api.mu.Unlock()
	now := api.now()
	for id, old := range api.filters {
		if now.Sub(old.lastUsed) > api.limits.FilterTimeout {
			api.removeLocked(id)
		}
	}
	if f.hasOwner && api.byClient[f.owner] >= api.limits.MaxFiltersPerIP {
		api.limits.refused("http.max-filters-per-ip")
		return "", &Error{Code: codeLogLimit, Msg: fmt.Sprintf("too many installed filters for client %s (at most %d per client, http.max-filters-per-ip); uninstall unused ones with eth_uninstallFilter",
			clientString(f.owner), api.limits.MaxFiltersPerIP)}
	}
	if len(api.filters) >= api.limits.MaxFilters {
		api.limits.refused("http.max-filters")
		return "", &Error{Code: codeLogLimit, Msg: fmt.Sprintf("too many installed filters (at most %d); uninstall unused ones with eth_uninstallFilter", api.limits.MaxFilters)}
	}
	f.lastUsed = now
	id := gethrpc.NewID()
	api.filters[id] = f
	if f.hasOwner {
		api.byClient[f.owner]++
	}
	return id, nil
}

// removeLocked uninstalls a filter; the caller holds api.mu.
func (api *FilterAPI) removeLocked(id gethrpc.ID) bool {
	f, ok := api.filters[id]
	if !ok {
		return false
	}
	delete(api.filters, id)
	if f.hasOwner {
		if api.byClient[f.owner]--; api.byClient[f.owner] <= 0 {
			delete(api.byClient, f.owner)
		}
	}
	return true
}

// lookup returns a live filter and marks it used; an expired one is removed.
func (api *FilterAPI) lookup(id gethrpc.ID) (*installedFilter, error) {
	api.mu.Lock()
	defer api.mu.Unlock()
	f, ok := api.filters[id]
	now := api.now()
	if ok && now.Sub(f.lastUsed) > api.limits.FilterTimeout {
		api.removeLocked(id)
		ok = false
	}
	if !ok {
		return nil, &Error{Code: CodeServerError, Msg: "filter not found"}
	}
	f.lastUsed = now
	return f, nil
}

// NewFilter serves eth_newFilter: a log filter whose eth_getFilterChanges
// returns the matching logs of blocks applied after it was installed (and
// within its fromBlock..toBlock, if given). It times out after
// FilterTimeout without a poll.
func (api *FilterAPI) NewFilter(ctx context.Context, crit FilterCriteria) (gethrpc.ID, error) {
	if err := api.halted(); err != nil {
		return "", err
	}
	if err := crit.checkValues(); err != nil {
		return "", err
	}
	if crit.BlockHash != nil {
		return "", invalidParams("a filter follows new blocks: blockHash cannot be used with eth_newFilter")
	}
	head := api.headNumber()
	f := &installedFilter{crit: &crit, to: math.MaxUint64, next: head + 1}
	var err error
	if !isLatest(crit.FromBlock) {
		if f.from, err = blockNumber(crit.FromBlock, head); err != nil {
			return "", err
		}
	}
	if !isLatest(crit.ToBlock) {
		if f.to, err = blockNumber(crit.ToBlock, head); err != nil {
			return "", err
		}
	}
	if f.from > f.to {
		return "", invalidParams("invalid block range params: fromBlock %d is after toBlock %d", f.from, f.to)
	}
	return api.install(ctx, f)
}

// NewBlockFilter serves eth_newBlockFilter: eth_getFilterChanges returns
// the hashes of the blocks applied since the last poll.
func (api *FilterAPI) NewBlockFilter(ctx context.Context) (gethrpc.ID, error) {
	if err := api.halted(); err != nil {
		return "", err
	}
	return api.install(ctx, &installedFilter{next: api.headNumber() + 1})
}

// UninstallFilter serves eth_uninstallFilter; false if there was no such filter.
func (api *FilterAPI) UninstallFilter(id gethrpc.ID) (bool, error) {
	if err := api.halted(); err != nil {
		return false, err
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	return api.removeLocked(id), nil
}

// GetFilterChanges serves eth_getFilterChanges: for a log filter the
// matching logs, for a block filter the block hashes, of the blocks applied
// since the last poll. One poll covers at most MaxLogBlockRange blocks and
// stops at the first block that brings the logs to MaxLogResults; the next
// poll continues from there, so nothing is lost and nothing repeats.
func (api *FilterAPI) GetFilterChanges(ctx context.Context, id gethrpc.ID) (any, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	f, err := api.lookup(id)
	if err != nil {
		return nil, err
	}
	done, err := api.heavy.enter(ctx, "eth_getFilterChanges")
	if err != nil {
		return nil, err
	}
	defer done()
	f.mu.Lock()
	defer f.mu.Unlock()
	head := api.headNumber()
	if f.pending {
		return api.pendingChanges(ctx, f)
	}
	if f.crit == nil {
		return api.blockChanges(f, head)
	}
	from := max(f.next, f.from)
	to := min(head, f.to)
	if from > to {
		return []*types.Log{}, nil
	}
	to = min(to, from+api.limits.MaxLogBlockRange-1)
	logs, through, err := api.b.State().FilterLogsPage(ctx, store.LogQuery{
		FromBlock: from, ToBlock: to, Addresses: f.crit.Addresses, Topics: f.crit.Topics, MaxResults: api.limits.MaxLogResults,
	})
	if err != nil {
		return nil, err
	}
	// The page is already bounded by MaxLogResults (refusing it by size
	// would stall the filter for good); it is charged to the request's
	// reply budget before the cursor moves, so a refused poll loses nothing.
	if err := api.chargeLogs(ctx, "eth_getFilterChanges", from, through, logs, false); err != nil {
		return nil, err
	}
	f.next = through + 1
	return logs, nil
}

// blockChanges returns the hashes of blocks f.next..head, at most
// MaxLogBlockRange of them, and advances f. The caller holds f.mu.
func (api *FilterAPI) blockChanges(f *installedFilter, head uint64) ([]common.Hash, error) {
	hashes := []common.Hash{}
	for n := f.next; n <= head && uint64(len(hashes)) < api.limits.MaxLogBlockRange; n++ {
		b, err := api.b.State().BlockByNumber(n)
		if err != nil {
			return nil, fmt.Errorf("block filter: %w", err)
		}
		hashes = append(hashes, b.Hash())
	}
	f.next += uint64(len(hashes))
	return hashes, nil
}

// GetFilterLogs serves eth_getFilterLogs: every log matching a log
// filter's criteria, as eth_getLogs would return them (same bounds). It
// counts as a use of the filter.
func (api *FilterAPI) GetFilterLogs(ctx context.Context, id gethrpc.ID) ([]*types.Log, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	f, err := api.lookup(id)
	if err != nil {
		return nil, err
	}
	if f.crit == nil {
		return nil, &Error{Code: CodeServerError, Msg: "filter not found"} // go-ethereum's answer for a block filter
	}
	return api.getLogs(ctx, "eth_getFilterLogs", f.crit)
}

// Logs serves eth_subscribe("logs") over WebSocket: each matching log of
// every block applied from now on, one notification per log as
// go-ethereum sends them, within fromBlock..toBlock if given. It shares the
// head feed's bound on subscriptions, and ends when the client falls too
// far behind.
func (api *FilterAPI) Logs(ctx context.Context, crit FilterCriteria) (*gethrpc.Subscription, error) {
	if err := api.halted(); err != nil {
		return nil, err
	}
	if _, ok := gethrpc.NotifierFromContext(ctx); !ok {
		return nil, gethrpc.ErrNotificationsUnsupported
	}
	if err := crit.checkValues(); err != nil {
		return nil, err
	}
	if crit.BlockHash != nil {
		return nil, invalidParams("a logs subscription follows new blocks: blockHash cannot be used")
	}
	head := api.headNumber()
	q := store.LogQuery{ToBlock: math.MaxUint64, Addresses: crit.Addresses, Topics: crit.Topics}
	var err error
	if !isLatest(crit.FromBlock) {
		if q.FromBlock, err = blockNumber(crit.FromBlock, head); err != nil {
			return nil, err
		}
	}
	if !isLatest(crit.ToBlock) {
		if q.ToBlock, err = blockNumber(crit.ToBlock, head); err != nil {
			return nil, err
		}
	}
	if q.FromBlock > q.ToBlock {
		return nil, invalidParams("invalid block range params: fromBlock %d is after toBlock %d", q.FromBlock, q.ToBlock)
	}
	return followHeads(ctx, api.b.Heads(), api.subs, func(notifier *gethrpc.Notifier, id gethrpc.ID, b *chain.Block) error {
		if b.Number() < q.FromBlock || b.Number() > q.ToBlock {
			return nil
		}
		rs, err := api.b.State().Receipts(b)
		if err != nil {
			return err // the block was just applied: only a failing database gets here
		}
		for _, r := range rs {
			for _, l := range r.Logs {
				if q.Matches(l) {
					if err := notifier.Notify(id, l); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}
