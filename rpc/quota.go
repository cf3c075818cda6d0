package rpc

import (
	"context"
	"fmt"
	"sync"

	gethrpc "github.com/ethereum/go-ethereum/rpc"
)

// subQuota bounds the eth_subscribe subscriptions one client holds: per
// client address (Limits.MaxSubscriptionsPerIP) and per WebSocket
// connection (Limits.MaxSubscriptionsPerConn), so that one client cannot
// take the HeadFeed's bound on all of them. Safe for concurrent use.
type subQuota struct {
	perIP, perConn int
	onRefused      func(bound string)

	mu   sync.Mutex
	held map[string]int
}

func newSubQuota(l Limits) *subQuota {
	l = l.withDefaults()
	return &subQuota{perIP: l.MaxSubscriptionsPerIP, perConn: l.MaxSubscriptionsPerConn, held: make(map[string]int), onRefused: l.OnRefused}
}

type quotaKey struct {
	key   string
	max   int
	what  string // names the client and the config key in the refusal
	bound string // the config key
}

// keys are the counters a subscription from ctx's client is charged to:
// its address (none for a client that is not on IP) and, over WebSocket,
// its connection (go-ethereum reports a WebSocket's own ip:port, which is
// unique while the connection lives).
func (q *subQuota) keys(ctx context.Context) []quotaKey {
	peer := gethrpc.PeerInfoFromContext(ctx)
	var keys []quotaKey
	if ip, ok := clientKey(peer.RemoteAddr); ok {
		keys = append(keys, quotaKey{"ip " + ip.String(), q.perIP, fmt.Sprintf("client %s (http.max-subscriptions-per-ip: %d)", clientString(ip), q.perIP), "http.max-subscriptions-per-ip"})
	}
	if peer.Transport == "ws" && peer.RemoteAddr != "" {
		keys = append(keys, quotaKey{"conn " + peer.RemoteAddr, q.perConn, fmt.Sprintf("this WebSocket connection (http.max-subscriptions-per-connection: %d)", q.perConn), "http.max-subscriptions-per-connection"})
	}
	return keys
}

// refusals is the quota's OnRefused hook (nil for a nil quota).
func (q *subQuota) refusals() func(string) {
	if q == nil {
		return nil
	}
	return q.onRefused
}

// acquire charges one subscription to ctx's client, or refuses it with
// -32005 naming the bound; release gives it back.
func (q *subQuota) acquire(ctx context.Context) (release func(), err error) {
	if q == nil {
		return func() {}, nil
	}
	keys := q.keys(ctx)
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, k := range keys {
		if q.held[k.key] >= k.max {
			countRefusal(q.onRefused, k.bound)
			return nil, &Error{Code: CodeLimitExceeded, Msg: "too many subscriptions for " + k.what + "; unsubscribe unused ones with eth_unsubscribe"}
		}
	}
	for _, k := range keys {
		q.held[k.key]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			for _, k := range keys {
				if q.held[k.key]--; q.held[k.key] <= 0 {
					delete(q.held, k.key)
				}
			}
		})
	}, nil
}
