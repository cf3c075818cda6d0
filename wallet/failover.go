package wallet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/rpc"
)

// Failover defaults (Options).
const (
	// DefaultStallTimeout is how long an endpoint may take to answer before
	// the same request also goes to the next one. A stopped process
	// (SIGSTOP, a frozen VM) accepts TCP connections and never answers;
	// waiting for it longer than an election would make a paused node cost
	// more than a dead one. Like ethers' FallbackProvider stallTimeout, the
	// slow request is not cancelled: whichever answers first wins.
	DefaultStallTimeout = time.Second
	// DefaultRetryFor is how long a call keeps going round the endpoints
	// while every one of them is unavailable (an election, a node
	// restarting): long enough for a leader fault (writes resume within
	// 2 s, docs/cluster.md), short enough that a cluster that is down is
	// reported as such.
	DefaultRetryFor = 15 * time.Second
	// retryBackoff and maxRetryBackoff space the rounds once every
	// endpoint answered "unavailable".
	retryBackoff    = 50 * time.Millisecond
	maxRetryBackoff = 500 * time.Millisecond
)

// Options tune how a Client over several endpoints fails over.
type Options struct {
	// StallTimeout is how long an endpoint may take before the request is
	// also sent to the next endpoint (0: DefaultStallTimeout).
	StallTimeout time.Duration
	// RetryFor is how long a call keeps trying while every endpoint is
	// unavailable; 0 tries each endpoint once.
	RetryFor time.Duration
}

// DefaultOptions are the options of a client that follows a cluster.
func DefaultOptions() Options {
	return Options{StallTimeout: DefaultStallTimeout, RetryFor: DefaultRetryFor}
}

// unavailableWords start (or are) the messages a Tally node answers when it
// cannot serve a request now but another node, or the same one a moment
// later, can: a halted node, a follower that has no leader to forward to,
// a leader whose admission no other validator confirmed holding (its
// answer was not a verdict on the transaction). Client libraries match
// messages the same way (go-ethereum's "already known", "nonce too low").
var unavailableWords = []string{
	"node halted",
	"no leader to forward to",
	"forward to leader: ",
	"forward queue full",
	"admitted, but no other validator confirmed holding it",
	"replicate to another validator: ",
}

// Unavailable reports whether err says the endpoint could not serve the
// request, as opposed to a deterministic answer that any node would give
// (a revert, a nonce error, invalid params, not found): a transport error
// (refused or reset connection, timeout, a connection lost mid-request),
// an HTTP 408, 429 or 5xx, JSON-RPC -32005 (limit exceeded: busy) or
// -32603 (internal error), or one of a Tally node's unavailability answers
// ("node halted", "no leader to forward to", …). A Client moves to the
// next endpoint on exactly these; so should any caller that keeps a list
// of nodes. The caller's own context ending is not unavailability.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, rpc.ErrClientQuit) || errors.Is(err, rpc.ErrNoResult) {
		return false
	}
	var he rpc.HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500 || he.StatusCode == 408 || he.StatusCode == 429
	}
	var re rpc.Error
	if errors.As(err, &re) {
		switch re.ErrorCode() {
		case -32005, -32603:
			return true
		}
		msg := re.Error()
		for _, w := range unavailableWords {
			if strings.HasPrefix(msg, w) || strings.Contains(msg, ": "+w) {
				return true
			}
		}
		return false
	}
	// Not an answer from a node: the request did not get through (or its
	// answer was lost). go-ethereum's rpc client returns net and url
	// errors, io errors, "connection lost", or the attempt's deadline.
	return !errors.Is(err, ErrNotFound) && !isDecodeError(err)
}

// isDecodeError reports an answer that arrived but did not decode into the
// result (a node's reply, so deterministic).
func isDecodeError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "json: cannot unmarshal") || strings.Contains(msg, "invalid character")
}

// alreadyKnown reports a node's "already known" refusal: it holds the
// transaction (pool or chain).
func alreadyKnown(err error) bool {
	var re rpc.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "already known")
}

// nonceTooLow reports a "nonce too low" refusal.
func nonceTooLow(err error) bool {
	var re rpc.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "nonce too low")
}

// ErrUnavailable is wrapped by the error of a call that no endpoint could
// serve within Options.RetryFor.
var ErrUnavailable = errors.New("no endpoint available")

type attempt[T any] struct {
	i   int
	v   T
	err error
}

// failover runs fn against the endpoints until one serves it: it starts at
// the endpoint that answered last (with a result or a refusal), moves on at once when an endpoint is
// Unavailable, and also sends the request to the next endpoint when one
// stalls for StallTimeout (the stalled one may still answer first). Once
// every endpoint was unavailable it waits a short backoff and goes round
// again until RetryFor has passed. A deterministic answer ends the call,
// except that refusal, when not nil, may turn it into a success
// (a re-sent transaction a node already holds); refusal is only asked
// when the request went to more than one endpoint.
func (c *Client) failover(ctx context.Context, fn func(ctx context.Context, e *endpoint) error, refusal func(ctx context.Context, e *endpoint, err error) error) error {
	_, err := try(ctx, c, c.current(), func(ctx context.Context, e *endpoint) (struct{}, error) {
		return struct{}{}, fn(ctx, e)
	}, refusal)
	return err
}

// read runs a read with failover and returns the winning attempt's
// value. Each attempt returns its own value: a stalled attempt that
// answers (or is cancelled) after another won writes nothing the caller
// reads.
func read[T any](ctx context.Context, c *Client, fn func(ctx context.Context, e *endpoint) (T, error)) (T, error) {
	return try(ctx, c, c.current(), fn, nil)
}

// try is failover starting at endpoint first, returning the value of the
// attempt that ended the call.
func try[T any](ctx context.Context, c *Client, first int, fn func(ctx context.Context, e *endpoint) (T, error), refusal func(ctx context.Context, e *endpoint, err error) error) (T, error) {
	var zero T
	n := len(c.eps)
	if n == 1 && c.opts.RetryFor <= 0 {
		return fn(ctx, c.eps[0])
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the attempts still running (a stalled endpoint)
	results := make(chan attempt[T], n)
	inflight := make([]bool, n)
	tried := make([]bool, n) // in this round
	started, running := 0, 0
	launch := func() bool {
		for k := range n {
			i := (first + k) % n
			if inflight[i] || tried[i] {
				continue
			}
			inflight[i], tried[i] = true, true
			started++
			running++
			go func() {
				var v T
				err := c.eps[i].dial(ctx)
				if err == nil {
					v, err = fn(ctx, c.eps[i])
				}
				results <- attempt[T]{i: i, v: v, err: err}
			}()
			return true
		}
		return false
	}
	deadline := time.Now().Add(c.opts.RetryFor)
	backoff := retryBackoff
	stall := time.NewTimer(c.opts.StallTimeout)
	defer stall.Stop()
	var lastErr error
	launch()
	for {
		select {
		case a := <-results:
			inflight[a.i] = false
			running--
			err := a.err
			if ctx.Err() != nil {
				return zero, ctxErr(ctx, lastErr)
			}
			if err != nil && !Unavailable(err) && refusal != nil && started > 1 {
				err = refusal(ctx, c.eps[a.i], err)
			}
			if err == nil || !Unavailable(err) {
				// An answer, even a refusal, shows the endpoint serves:
				// the next call starts there rather than at one that
				// stalled or refused the connection. "Not found" does
				// not: the endpoint may be the one that is behind.
				if !errors.Is(err, ErrNotFound) {
					c.setCurrent(a.i)
				}
				if err != nil {
					return zero, err
				}
				return a.v, nil
			}
			lastErr = fmt.Errorf("%s: %w", c.eps[a.i].url, err)
			if launch() {
				stall.Reset(c.opts.StallTimeout)
				continue
			}
			if running > 0 {
				continue
			}
			// Every endpoint was unavailable this round.
			if c.opts.RetryFor <= 0 || time.Now().Add(backoff).After(deadline) {
				return zero, fmt.Errorf("%w: %w", ErrUnavailable, lastErr)
			}
			select {
			case <-ctx.Done():
				return zero, ctxErr(ctx, lastErr)
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxRetryBackoff)
			clear(tried)
			launch()
			stall.Reset(c.opts.StallTimeout)
		case <-stall.C:
			if launch() {
				stall.Reset(c.opts.StallTimeout)
			}
		case <-ctx.Done():
			return zero, ctxErr(ctx, lastErr)
		}
	}
}

// ctxErr is the error of a call whose context ended, with the last
// endpoint's failure if there was one.
func ctxErr(ctx context.Context, last error) error {
	if last != nil {
		return fmt.Errorf("%w (last: %w)", ctx.Err(), last)
	}
	return ctx.Err()
}
