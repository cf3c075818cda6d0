package rpc

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/tally-ledger/tally/chain"
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

// RateLimiter applies RateLimits: a token bucket per sender and per
// client address, the least recently used forgotten beyond MaxTracked so a
// flood of fresh keys or addresses cannot grow it without bound. A
// transaction is charged to its client's IP before its signature is
// recovered (chargeIP), since recovery is the costly part of admission,
// and to its sender after (ipCharge.chargeSender), which gives an exempt
// sender's IP token back. The buckets are written here rather than taken
// from golang.org/x/time/rate because that package cannot give a token
// back exactly (Reservation.CancelAt restores only what no later
// reservation depends on). It is safe for concurrent use.
type RateLimiter struct {
	limits RateLimits
	now    func() time.Time // time.Now; tests step it
	// onRefused is Limits.OnRefused (nil: not counted).
	onRefused func(bound string)

	mu       sync.Mutex
	accounts *simplelru.LRU[common.Address, *tokenBucket]
	clients  *simplelru.LRU[netip.Prefix, *tokenBucket]
}

// tokenBucket holds up to burst tokens, refilled at a steady rate.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// refill adds the tokens earned since the last refill, up to burst.
func (b *tokenBucket) refill(now time.Time, perSecond float64, burst int) {
	if now.After(b.last) {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*perSecond)
		b.last = now
	}
}

// NewRateLimiter returns a limiter for l, which must be valid.
func NewRateLimiter(l RateLimits) (*RateLimiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	size := max(l.MaxTracked, 1) // simplelru refuses 0; an unused table stays empty
	accounts, err := simplelru.NewLRU[common.Address, *tokenBucket](size, nil)
	if err != nil {
		return nil, fmt.Errorf("rate limits: account table: %w", err)
	}
	clients, err := simplelru.NewLRU[netip.Prefix, *tokenBucket](size, nil)
	if err != nil {
		return nil, fmt.Errorf("rate limits: client table: %w", err)
	}
	return &RateLimiter{limits: l, now: time.Now, accounts: accounts, clients: clients}, nil
}

// ipCharge is one transaction's charge in progress: the token taken from
// its client's IP bucket before its signature is recovered (ip is nil when
// no IP limit applies).
type ipCharge struct {
	l  *RateLimiter
	ip *tokenBucket
}

// chargeIP takes a token from the bucket of the client at remoteAddr, or
// refuses the transaction (a *Error with CodeLimitExceeded naming the IP)
// before anything about it is checked: a client over its limit costs the
// node no signature recovery, whoever signed its transactions.
func (l *RateLimiter) chargeIP(remoteAddr string) (*ipCharge, error) {
	c := &ipCharge{l: l}
	client, ok := clientKey(remoteAddr)
	if !ok || l.limits.PerIP <= 0 {
		return c, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := bucket(l.clients, client, l.now(), l.limits.PerIP, l.limits.IPBurst)
	if b.tokens < 1 {
		countRefusal(l.onRefused, "ratelimit.per-ip")
		return nil, limitError("IP "+clientString(client), l.limits.PerIP)
	}
	b.tokens--
	c.ip = b
	return c, nil
}

// ipTokens is how many transactions the client at remoteAddr may submit
// now (math.MaxInt without an IP limit): how many of a batch are worth
// recovering at once.
func (l *RateLimiter) ipTokens(remoteAddr string) int {
	client, ok := clientKey(remoteAddr)
	if !ok || l.limits.PerIP <= 0 {
		return math.MaxInt
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(bucket(l.clients, client, l.now(), l.limits.PerIP, l.limits.IPBurst).tokens)
}

// chargeSender completes the charge once the sender is known (nil when
// the signature did not recover: then the IP alone is charged). An exempt
// sender is charged nothing, and its IP token is given back, so a client
// whose transactions are all exempt never exhausts its IP bucket. Any
// other sender is charged to its account bucket; a refusal there keeps
// the IP token, since the signature was checked.
func (c *ipCharge) chargeSender(sender *common.Address) error {
	l := c.l
	if sender != nil && l.limits.Exempt != nil && l.limits.Exempt(*sender) {
		c.refund()
		return nil
	}
	if sender == nil || l.limits.PerAccount <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := bucket(l.accounts, *sender, l.now(), l.limits.PerAccount, l.limits.AccountBurst)
	if b.tokens < 1 {
		countRefusal(l.onRefused, "ratelimit.per-account")
		return limitError("account "+sender.Hex(), l.limits.PerAccount)
	}
	b.tokens--
	return nil
}

// refund gives the IP token back.
func (c *ipCharge) refund() {
	if c.ip == nil {
		return
	}
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.ip.tokens = min(c.ip.tokens+1, float64(c.l.limits.IPBurst))
	c.ip = nil
}

// Allow charges one transaction from sender (nil when its signature does
// not recover) submitted over the connection from remoteAddr, as a
// submission is charged: its client's IP first, then its sender. It
// returns a *Error with CodeLimitExceeded, naming the limit, when either
// bucket is empty. An exempt sender takes nothing from either bucket, but
// a client whose IP bucket is empty is refused whoever the sender is (a
// submission is refused before its sender is known).
func (l *RateLimiter) Allow(remoteAddr string, sender *common.Address) error {
	c, err := l.chargeIP(remoteAddr)
	if err != nil {
		return err
	}
	return c.chargeSender(sender)
}

// tracked returns how many senders and clients have buckets.
func (l *RateLimiter) tracked() (accounts, clients int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accounts.Len(), l.clients.Len()
}

// bucket returns k's bucket refilled to now, creating a full one for a
// key not (or no longer) tracked. The caller holds the limiter's mu.
func bucket[K comparable](c *simplelru.LRU[K, *tokenBucket], k K, now time.Time, perSecond float64, burst int) *tokenBucket {
	if b, ok := c.Get(k); ok {
		b.refill(now, perSecond, burst)
		return b
	}
	b := &tokenBucket{tokens: float64(burst), last: now}
	c.Add(k, b)
	return b
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

// recoverBatch charges a batch's transactions in order and recovers the
// senders of those its client's IP bucket admits, in parallel, before any
// of them is admitted or forwarded, so the node (BatchAdmitter) is never
// handed one the limits refuse and a client over its IP limit costs no recovery.
// It works in chunks of what the IP bucket holds (at most
// recoverChunk), so that exempt senders' tokens come back before the next
// chunk. The result is aligned with txs: nil for a charged transaction
// whose sender recovered (froms[i] holds it), the limit's refusal, or the
// recovery error.
func (l *RateLimiter) recoverBatch(remoteAddr string, senders *chain.SenderCache, txs []*types.Transaction) (froms []common.Address, verdicts []error) {
	froms = make([]common.Address, len(txs))
	verdicts = make([]error, len(txs))
	for next := 0; next < len(txs); {
		n := min(len(txs)-next, recoverChunk, max(l.ipTokens(remoteAddr), 1))
		var charges []*ipCharge
		var idx []int
		for i := next; i < next+n; i++ {
			c, err := l.chargeIP(remoteAddr)
			if err != nil {
				verdicts[i] = err
				continue
			}
			charges, idx = append(charges, c), append(idx, i)
		}
		chunk := make([]*types.Transaction, len(idx))
		for k, i := range idx {
			chunk[k] = txs[i]
		}
		got, errs := senders.Senders(chunk)
		for k, i := range idx {
			var from *common.Address
			if errs == nil || errs[k] == nil {
				from, froms[i] = &got[k], got[k]
			} else {
				verdicts[i] = errs[k]
			}
			if err := charges[k].chargeSender(from); err != nil {
				verdicts[i] = err
			}
		}
		next += n
	}
	return froms, verdicts
}

// recoverChunk bounds the senders recovered in one parallel step of a batch.
const recoverChunk = 256
