package rpc

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	gethrpc "github.com/ethereum/go-ethereum/rpc"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// CodeLimitExceeded is the JSON-RPC code of a transaction refused by a rate
// limit: -32005 "limit exceeded" (EIP-1474), the code go-ethereum and
// Infura use, so client libraries recognise it as "back off and retry"
// rather than as a verdict on the transaction.
const CodeLimitExceeded = -32005

// RateLimits bound how fast clients may submit transactions. Tally charges
// no fees (DESIGN.md decision 8), so nothing else makes spam cost its
// sender: without these a single client could fill the mempool and every
// block. The limits are token buckets per sender and per client IP, kept
// by each node for the clients it serves.
type RateLimits struct {
	// PerAccount is the sustained rate one sender may submit at, in tx/s;
	// 0 turns the per-account limit off.
	PerAccount float64
	// AccountBurst is how many transactions a sender may submit at once
	// (the bucket's size); at least 1 while PerAccount is on.
	AccountBurst int
	// PerIP is the sustained rate one client address may submit at, in
	// tx/s; 0 turns the per-IP limit off.
	PerIP float64
	// IPBurst is the per-IP bucket's size; at least 1 while PerIP is on.
	IPBurst int
	// MaxTracked bounds the senders, and separately the client addresses,
	// whose buckets are kept; beyond it the least recently seen is
	// forgotten and starts again with a full bucket. Set it above the
	// number of distinct senders (and clients) active within a bucket's
	// refill time, or an evicted spammer gets its burst back early.
	MaxTracked int
	// Exempt reports whether transactions from a sender are exempt from
	// both limits (nil: no sender is). A request's IP limit is skipped when
	// all its transactions are exempt, so load tools on trusted accounts
	// are never throttled. It is called once per submitted transaction,
	// concurrently, and must be cheap.
	Exempt func(common.Address) bool
}

// Enabled reports whether either limit is on.
func (r RateLimits) Enabled() bool { return r.PerAccount > 0 || r.PerIP > 0 }

// Validate checks the limits; errors name the field.
func (r RateLimits) Validate() error {
	for _, f := range []struct {
		name  string
		rate  float64
		burst int
		bname string
	}{{"PerAccount", r.PerAccount, r.AccountBurst, "AccountBurst"}, {"PerIP", r.PerIP, r.IPBurst, "IPBurst"}} {
		// !(x >= 0) also catches NaN, which TOML and JSON can carry.
		if !(f.rate >= 0) || math.IsInf(f.rate, 0) {
			return fmt.Errorf("rate limits: %s is %v: need a finite rate >= 0 (0: off)", f.name, f.rate)
		}
		if f.rate > 0 && f.burst < 1 {
			return fmt.Errorf("rate limits: %s is %d: need at least 1 while %s is on (a bucket of 0 refuses everything)", f.bname, f.burst, f.name)
		}
	}
	if r.Enabled() && r.MaxTracked < 1 {
		return fmt.Errorf("rate limits: MaxTracked is %d: need at least 1", r.MaxTracked)
	}
	return nil
}

// RateLimiter applies RateLimits: a token bucket (golang.org/x/time/rate)
// per sender and per client address, the least recently used forgotten
// beyond MaxTracked so a flood of fresh keys or addresses cannot grow it
// without bound. It is safe for concurrent use.
type RateLimiter struct {
	limits RateLimits
	now    func() time.Time // time.Now; tests step it

	// mu makes checking both buckets and then taking from both one step,
	// so a transaction refused by one limit takes nothing from the other.
	mu       sync.Mutex
	accounts *simplelru.LRU[common.Address, *rate.Limiter]
	clients  *simplelru.LRU[netip.Prefix, *rate.Limiter]
}

// NewRateLimiter returns a limiter for l, which must be valid.
func NewRateLimiter(l RateLimits) (*RateLimiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	size := max(l.MaxTracked, 1) // simplelru refuses 0; an unused table stays empty
	accounts, err := simplelru.NewLRU[common.Address, *rate.Limiter](size, nil)
	if err != nil {
		return nil, fmt.Errorf("rate limits: account table: %w", err)
	}
	clients, err := simplelru.NewLRU[netip.Prefix, *rate.Limiter](size, nil)
	if err != nil {
		return nil, fmt.Errorf("rate limits: client table: %w", err)
	}
	return &RateLimiter{limits: l, now: time.Now, accounts: accounts, clients: clients}, nil
}

// Allow charges one transaction from sender (nil when its signature does
// not recover: then only the client is charged) submitted over the
// connection from remoteAddr. It returns a *Error with CodeLimitExceeded,
// naming the limit, when either bucket is empty; nothing is taken then.
// An exempt sender is charged nothing, not even to its client's IP: a
// request whose transactions are all exempt is never limited, while the
// others in a mixed request are charged as usual.
func (l *RateLimiter) Allow(remoteAddr string, sender *common.Address) error {
	if sender != nil && l.limits.Exempt != nil && l.limits.Exempt(*sender) {
		return nil
	}
	client, hasClient := clientKey(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var acct, ip *rate.Limiter
	if sender != nil && l.limits.PerAccount > 0 {
		acct = bucket(l.accounts, *sender, l.limits.PerAccount, l.limits.AccountBurst)
		if acct.TokensAt(now) < 1 {
			return limitError("account "+sender.Hex(), l.limits.PerAccount)
		}
	}
	if hasClient && l.limits.PerIP > 0 {
		ip = bucket(l.clients, client, l.limits.PerIP, l.limits.IPBurst)
		if ip.TokensAt(now) < 1 {
			return limitError("IP "+clientString(client), l.limits.PerIP)
		}
	}
	// Both had a token at now, and mu is held: both are taken.
	if acct != nil {
		acct.AllowN(now, 1)
	}
	if ip != nil {
		ip.AllowN(now, 1)
	}
	return nil
}

// tracked returns how many senders and clients have buckets.
func (l *RateLimiter) tracked() (accounts, clients int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accounts.Len(), l.clients.Len()
}

// bucket returns k's bucket, creating a full one for a key not (or no
// longer) tracked.
func bucket[K comparable](c *simplelru.LRU[K, *rate.Limiter], k K, perSecond float64, burst int) *rate.Limiter {
	if lim, ok := c.Get(k); ok {
		return lim
	}
	lim := rate.NewLimiter(rate.Limit(perSecond), burst)
	c.Add(k, lim)
	return lim
}

func limitError(what string, perSecond float64) *Error {
	return &Error{Code: CodeLimitExceeded, Msg: fmt.Sprintf("rate limit exceeded for %s (%s tx/s)", what, strconv.FormatFloat(perSecond, 'f', -1, 64))}
}

// clientKey is the bucket of the client at remoteAddr, the address of the
// TCP connection as go-ethereum's server reports it ("ip:port", from
// net/http's Request.RemoteAddr or the WebSocket's conn): an IPv4 address,
// or the /64 an IPv6 address is in, since one host is usually given a whole
// /64 and could otherwise rotate through 2^64 buckets. Headers such as
// X-Forwarded-For are deliberately not read: any client can set them, and
// trusting them would let each request claim a fresh IP. Behind a reverse
// proxy every client therefore shares the proxy's bucket; such a deployment
// limits per client in the proxy (which knows whom to trust) and raises or
// turns off the per-IP limit here. An address that is not an IP (an
// in-process or IPC client) has no IP limit.
func clientKey(remoteAddr string) (netip.Prefix, bool) {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32), true
	}
	p, err := a.Prefix(64)
	return p, err == nil
}

func clientString(p netip.Prefix) string {
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// chargeBatch charges a batch's transactions in order, before any of them
// is admitted or forwarded, so SubmitBatch never starts forwarding one the
// limit refuses. froms and errs are SenderCache.Senders' answers for txs.
// The result is aligned with txs: nil for a charged transaction.
func (l *RateLimiter) chargeBatch(remoteAddr string, txs []*types.Transaction, froms []common.Address, errs []error) []error {
	verdicts := make([]error, len(txs))
	for i := range txs {
		var from *common.Address
		if errs == nil || errs[i] == nil {
			from = &froms[i]
		}
		if err := l.Allow(remoteAddr, from); err != nil {
			verdicts[i] = err
		}
	}
	return verdicts
}

// batchVerdicts carries the limiter's verdicts on a batch's transactions
// from ServeHTTP, which charges them before the batch starts, to SubmitTx,
// which must neither charge them again nor admit a refused one. Each
// occurrence of a hash has its own verdict, so a transaction repeated in a
// batch is charged for every copy, as it would be one call at a time.
type batchVerdicts struct {
	mu     sync.Mutex
	byHash map[common.Hash][]error
}

type batchVerdictsKey struct{}

func newBatchVerdicts(txs []*types.Transaction, verdicts []error) *batchVerdicts {
	v := &batchVerdicts{byHash: make(map[common.Hash][]error, len(txs))}
	for i, tx := range txs {
		h := tx.Hash()
		v.byHash[h] = append(v.byHash[h], verdicts[i])
	}
	return v
}

// take returns the next verdict for h; charged is false if the batch's
// charges hold none (the call was not seen by ServeHTTP: it is charged now).
func (v *batchVerdicts) take(h common.Hash) (charged bool, verdict error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	q := v.byHash[h]
	if len(q) == 0 {
		return false, nil
	}
	v.byHash[h] = q[1:]
	return true, q[0]
}

// limitedBackend is the Backend the API serves through while rate limits
// are on. go-ethereum's server dispatches calls itself, over HTTP and
// WebSocket, single and batched, and every eth_sendRawTransaction reaches
// the node through SubmitTx: charging there covers every path. It hides
// the node's BatchSubmitter on purpose; the Server keeps the node's own
// and feeds it only transactions the limiter let through.
type limitedBackend struct {
	Backend
	limiter *RateLimiter
}

// SubmitTx charges tx to its sender and its client, then admits it; a
// refused transaction never reaches the node, so it is neither admitted
// nor forwarded.
func (b *limitedBackend) SubmitTx(ctx context.Context, tx *types.Transaction) error {
	if v, ok := ctx.Value(batchVerdictsKey{}).(*batchVerdicts); ok {
		if charged, err := v.take(tx.Hash()); charged {
			if err != nil {
				return err
			}
			return b.Backend.SubmitTx(ctx, tx)
		}
	}
	var from *common.Address
	if a, err := b.Senders().Sender(tx); err == nil {
		from = &a
	} // else the node refuses it below; its client is still charged
	if err := b.limiter.Allow(gethrpc.PeerInfoFromContext(ctx).RemoteAddr, from); err != nil {
		return err
	}
	return b.Backend.SubmitTx(ctx, tx)
}
