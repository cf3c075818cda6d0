package monitor

import (
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sort"
	"time"

	"github.com/tally-ledger/tally/config"
	"github.com/tally-ledger/tally/internal/credentials"
	"github.com/tally-ledger/tally/txdecode"
	"github.com/tally-ledger/tally/wallet"
)

// Duration is a time.Duration written as "10ms", "1h" in config files.
type Duration = config.Duration

// Config is the monitor's configuration file, monitor.toml. docs/monitor.md
// documents every key and docs/config.md the ones that bound growth.
// Relative paths resolve against the file's directory.
type Config struct {
	// Listen serves the review API, /metrics and /healthz (host:port).
	Listen string `toml:"listen"`
	// DataDir holds the monitor's own Pebble database.
	DataDir string `toml:"datadir"`

	Nodes    NodesConfig    `toml:"nodes"`
	Follow   FollowConfig   `toml:"follow"`
	Operator OperatorConfig `toml:"operator"`
	// Key is the compliance authority's key, used only to freeze the
	// account of an escalated alert. Without it an escalation is refused.
	Key     credentials.KeyConfig `toml:"key"`
	Queue   QueueConfig           `toml:"queue"`
	Webhook WebhookConfig         `toml:"webhook"`
	Rules   RulesConfig           `toml:"rules"`
	Log     LogConfig             `toml:"log"`

	// Dir is the config file's directory, against which relative paths
	// resolve (Path).
	config.Dir
}

// NodesConfig lists the nodes' JSON-RPC endpoints (failover as the wallet
// client does: an unreachable node moves calls to the next).
type NodesConfig struct {
	Endpoints []string `toml:"endpoints"`
	Timeout   Duration `toml:"timeout"`
}

// FollowConfig tunes the block follower.
type FollowConfig struct {
	PollInterval Duration `toml:"poll-interval"`
	// Batch is how many blocks one tally_getRawBlocks asks for; they are
	// judged and recorded with the cursor in one batch.
	Batch int `toml:"batch"`
	// StartBlock is where a fresh monitor starts (its parent's hash is
	// read to anchor the hash chain).
	StartBlock uint64 `toml:"start-block"`
}

// OperatorConfig names who may use the review API and /metrics.
type OperatorConfig struct {
	TokensFile string `toml:"tokens-file"`
}

// QueueConfig bounds the review queue.
type QueueConfig struct {
	// MaxTxs bounds the transactions one alert lists: an open alert
	// absorbs its rule's later firings for the same account, adding
	// their transactions up to this many.
	MaxTxs int `toml:"max-txs"`
	// MaxClosed is how many closed (dismissed or escalated) alerts are
	// kept; the oldest are deleted beyond it. The action log keeps every
	// action.
	MaxClosed int `toml:"max-closed"`
	// MaxList bounds one page of the alert list.
	MaxList int `toml:"max-list"`
}

// WebhookConfig configures the signed notifications (docs/monitor.md,
// "Webhook").
type WebhookConfig struct {
	// URL receives a POST per event; empty disables notifications.
	URL string `toml:"url"`
	// SecretFile holds the HMAC-SHA256 secret the POSTs are signed with.
	SecretFile string `toml:"secret-file"`
	// Events are the alert events sent: created, acknowledged,
	// dismissed, escalated, frozen.
	Events   []string `toml:"events"`
	Timeout  Duration `toml:"timeout"`
	RetryMin Duration `toml:"retry-min"`
	RetryMax Duration `toml:"retry-max"`
	// MaxAge drops a delivery that has failed for this long (counted in
	// tally_monitor_webhook_dropped_total).
	MaxAge Duration `toml:"max-age"`
	// MaxPending bounds the outbox: a new delivery beyond it is dropped
	// and counted.
	MaxPending int `toml:"max-pending"`
}

// LogConfig configures logging (package config checks it).
type LogConfig = config.Log

// Amounts are per-asset amounts in the asset's units, by symbol
// ({ CNY = "50000", HKD = "50000" }); an asset not listed has no such
// threshold (the rule does not apply to it).
type Amounts map[string]string

// RulesConfig holds the detective rules' parameters (docs/monitor.md,
// "Rules"). Windows are block time.
type RulesConfig struct {
	// MaxEvents bounds the recent payments, receipts and failures kept
	// per account for the windowed rules (oldest dropped first).
	MaxEvents int `toml:"max-events"`

	LargeAmount LargeAmountRule `toml:"large-amount"`
	Structuring StructuringRule `toml:"structuring"`
	RapidInOut  RapidInOutRule  `toml:"rapid-in-out"`
	NewPayee    NewPayeeRule    `toml:"new-payee"`
	Dormant     DormantRule     `toml:"dormant"`
	ManySenders ManySendersRule `toml:"many-senders"`
	FailedBurst FailedBurstRule `toml:"failed-burst"`
}

// LargeAmountRule fires on a payment of at least Multiplier times the
// mean of the sender's earlier payments in the asset, once it made
// MinHistory of them, and at least MinAmount.
type LargeAmountRule struct {
	Enabled    bool    `toml:"enabled"`
	Multiplier float64 `toml:"multiplier"`
	MinHistory int     `toml:"min-history"`
	MinAmount  Amounts `toml:"min-amount"`
}

// StructuringRule fires when one sender makes Count payments, each within
// Margin below Threshold (threshold x (1-margin) <= amount < threshold),
// inside Window.
type StructuringRule struct {
	Enabled   bool     `toml:"enabled"`
	Threshold Amounts  `toml:"threshold"`
	Margin    float64  `toml:"margin"`
	Count     int      `toml:"count"`
	Window    Duration `toml:"window"`
}

// RapidInOutRule fires when an account sends out at least Ratio of what it
// received inside Window, and what it received is at least MinAmount.
type RapidInOutRule struct {
	Enabled   bool     `toml:"enabled"`
	Window    Duration `toml:"window"`
	Ratio     float64  `toml:"ratio"`
	MinAmount Amounts  `toml:"min-amount"`
}

// NewPayeeRule fires on a payment of at least MinAmount to an account the
// sender never paid before.
type NewPayeeRule struct {
	Enabled   bool    `toml:"enabled"`
	MinAmount Amounts `toml:"min-amount"`
}

// DormantRule fires on a payment of at least MinAmount by an account whose
// previous payment is at least After old.
type DormantRule struct {
	Enabled   bool     `toml:"enabled"`
	After     Duration `toml:"after"`
	MinAmount Amounts  `toml:"min-amount"`
}

// ManySendersRule fires when an account first seen less than NewAccount
// ago receives from Senders distinct senders inside Window.
type ManySendersRule struct {
	Enabled    bool     `toml:"enabled"`
	Senders    int      `toml:"senders"`
	Window     Duration `toml:"window"`
	NewAccount Duration `toml:"new-account"`
}

// FailedBurstRule fires when one account's transactions fail Count times
// inside Window.
type FailedBurstRule struct {
	Enabled bool     `toml:"enabled"`
	Count   int      `toml:"count"`
	Window  Duration `toml:"window"`
}

// Defaults of the bounds.
const (
	DefaultMaxEvents  = 256
	DefaultMaxTxs     = 100
	DefaultMaxClosed  = 100_000
	DefaultMaxList    = 1000
	DefaultMaxPending = 100_000
)

// DefaultConfig returns the configuration of a monitor that sets only the
// required keys. The amounts are for the dev chain's CNY and HKD.
func DefaultConfig() Config {
	day := 24 * time.Hour
	return Config{
		Listen:  "127.0.0.1:8700",
		DataDir: "monitor-data",
		Nodes:   NodesConfig{Timeout: Duration(10 * time.Second)},
		Follow:  FollowConfig{PollInterval: Duration(500 * time.Millisecond), Batch: 64},
		Key:     credentials.KeyConfig{PasswordEnv: "TALLY_MONITOR_PASSWORD"},
		Queue:   QueueConfig{MaxTxs: DefaultMaxTxs, MaxClosed: DefaultMaxClosed, MaxList: DefaultMaxList},
		Webhook: WebhookConfig{Events: []string{EventCreated, EventEscalated, EventFrozen}, Timeout: Duration(10 * time.Second), RetryMin: Duration(time.Second), RetryMax: Duration(10 * time.Minute), MaxAge: Duration(3 * day), MaxPending: DefaultMaxPending},
		Log:     LogConfig{Level: "info", Format: "text"},
		Rules: RulesConfig{
			MaxEvents:   DefaultMaxEvents,
			LargeAmount: LargeAmountRule{Enabled: true, Multiplier: 10, MinHistory: 5, MinAmount: Amounts{"CNY": "1000", "HKD": "1000"}},
			Structuring: StructuringRule{Enabled: true, Threshold: Amounts{"CNY": "50000", "HKD": "120000"}, Margin: 0.1, Count: 3, Window: Duration(day)},
			RapidInOut:  RapidInOutRule{Enabled: true, Window: Duration(time.Hour), Ratio: 0.9, MinAmount: Amounts{"CNY": "10000", "HKD": "10000"}},
			NewPayee:    NewPayeeRule{Enabled: true, MinAmount: Amounts{"CNY": "20000", "HKD": "20000"}},
			Dormant:     DormantRule{Enabled: true, After: Duration(90 * day), MinAmount: Amounts{"CNY": "1000", "HKD": "1000"}},
			ManySenders: ManySendersRule{Enabled: true, Senders: 10, Window: Duration(day), NewAccount: Duration(7 * day)},
			FailedBurst: FailedBurstRule{Enabled: true, Count: 5, Window: Duration(10 * time.Minute)},
		},
	}
}

// LoadConfig reads a TOML config file over the defaults. Unknown keys and
// bad values are refused with an error naming the key.
func LoadConfig(path string) (Config, error) {
	return config.Load(path, "monitor", DefaultConfig())
}

// ParseConfig decodes a config file's content over cfg strictly and
// validates it; relative paths resolve against dir.
func ParseConfig(data []byte, dir string, cfg *Config) error { return config.Parse(data, dir, cfg) }

// Validate checks values; errors name the key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("key %s: %s", key, fmt.Sprintf(format, args...))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%q is not host:port: %v", c.Listen, err)
	}
	if c.DataDir == "" {
		return bad("datadir", "required")
	}
	if len(c.Nodes.Endpoints) == 0 {
		return bad("nodes.endpoints", "required: at least one node JSON-RPC URL")
	}
	for i, e := range c.Nodes.Endpoints {
		if err := config.CheckURL(e, "ws", "wss"); err != nil {
			return bad(fmt.Sprintf("nodes.endpoints[%d]", i), "%v", err)
		}
	}
	if c.Follow.Batch < 1 || c.Follow.Batch > 256 {
		return bad("follow.batch", "%d: must be 1..256 (tally_getRawBlocks returns at most 256 blocks)", c.Follow.Batch)
	}
	durations := []struct {
		key string
		d   Duration
	}{
		{"nodes.timeout", c.Nodes.Timeout}, {"follow.poll-interval", c.Follow.PollInterval},
		{"webhook.timeout", c.Webhook.Timeout}, {"webhook.retry-min", c.Webhook.RetryMin}, {"webhook.retry-max", c.Webhook.RetryMax},
		{"webhook.max-age", c.Webhook.MaxAge},
		{"rules.structuring.window", c.Rules.Structuring.Window}, {"rules.rapid-in-out.window", c.Rules.RapidInOut.Window},
		{"rules.dormant.after", c.Rules.Dormant.After}, {"rules.many-senders.window", c.Rules.ManySenders.Window},
		{"rules.many-senders.new-account", c.Rules.ManySenders.NewAccount}, {"rules.failed-burst.window", c.Rules.FailedBurst.Window},
	}
	for _, d := range durations {
		if d.d <= 0 {
			return bad(d.key, "must be a positive duration")
		}
	}
	if c.Webhook.RetryMax < c.Webhook.RetryMin {
		return bad("webhook.retry-max", "must be at least webhook.retry-min")
	}
	if c.Webhook.URL != "" {
		if err := config.CheckURL(c.Webhook.URL); err != nil {
			return bad("webhook.url", "%v", err)
		}
		if c.Webhook.SecretFile == "" {
			return bad("webhook.secret-file", "required with webhook.url: the receiver checks every POST's HMAC with it")
		}
	}
	for i, e := range c.Webhook.Events {
		if !knownEvent(e) {
			return bad(fmt.Sprintf("webhook.events[%d]", i), "%q: use %v", e, Events)
		}
	}
	for _, b := range []struct {
		key       string
		v, lo, hi int
	}{
		{"webhook.max-pending", c.Webhook.MaxPending, 1, 10_000_000},
		{"queue.max-txs", c.Queue.MaxTxs, 1, 10_000},
		{"queue.max-closed", c.Queue.MaxClosed, 1, 100_000_000},
		{"queue.max-list", c.Queue.MaxList, 1, 100_000},
		{"rules.max-events", c.Rules.MaxEvents, 1, 100_000},
	} {
		if b.v < b.lo || b.v > b.hi {
			return bad(b.key, "%d: must be %d..%d", b.v, b.lo, b.hi)
		}
	}
	r := &c.Rules
	if r.LargeAmount.Multiplier <= 1 {
		return bad("rules.large-amount.multiplier", "%v: must be above 1", r.LargeAmount.Multiplier)
	}
	if r.LargeAmount.MinHistory < 1 {
		return bad("rules.large-amount.min-history", "must be at least 1")
	}
	if r.Structuring.Margin <= 0 || r.Structuring.Margin >= 1 {
		return bad("rules.structuring.margin", "%v: must be between 0 and 1 (0.1: payments within 10%% below the threshold)", r.Structuring.Margin)
	}
	if r.Structuring.Count < 2 {
		return bad("rules.structuring.count", "must be at least 2")
	}
	if r.RapidInOut.Ratio <= 0 || r.RapidInOut.Ratio > 1 {
		return bad("rules.rapid-in-out.ratio", "%v: must be in (0, 1]", r.RapidInOut.Ratio)
	}
	if r.ManySenders.Senders < 2 {
		return bad("rules.many-senders.senders", "must be at least 2")
	}
	if r.FailedBurst.Count < 2 {
		return bad("rules.failed-burst.count", "must be at least 2")
	}
	for key, as := range map[string]Amounts{"rules.large-amount.min-amount": r.LargeAmount.MinAmount, "rules.structuring.threshold": r.Structuring.Threshold,
		"rules.rapid-in-out.min-amount": r.RapidInOut.MinAmount, "rules.new-payee.min-amount": r.NewPayee.MinAmount, "rules.dormant.min-amount": r.Dormant.MinAmount} {
		for sym, v := range as {
			// The asset's decimals are known once a node answers
			// (thresholds); here the grammar is checked.
			if _, err := wallet.ParseAmount(v, 18); err != nil {
				return bad(key+"."+sym, "%v", err)
			}
		}
	}
	return c.Log.Check()
}

// NewLogger returns the logger the [log] section asks for, writing to w.
func (c *Config) NewLogger(w io.Writer) *slog.Logger { return c.Log.NewLogger(w) }

// thresholds converts a rule's per-symbol amounts into base units per
// asset id. A symbol the chain does not have is an error naming the key:
// a threshold that silently never applies is a hole in the monitoring.
func thresholds(key string, as Amounts, assets txdecode.Assets) (map[uint32]*big.Int, error) {
	out := map[uint32]*big.Int{}
	syms := make([]string, 0, len(as))
	for s := range as {
		syms = append(syms, s)
	}
	sort.Strings(syms)
	for _, sym := range syms {
		a, ok := assets.BySymbol(sym)
		if !ok {
			return nil, fmt.Errorf("key %s.%s: the chain has no asset %s (it has %v)", key, sym, sym, assets.Symbols())
		}
		v, err := wallet.ParseAmount(as[sym], a.Decimals)
		if err != nil {
			return nil, fmt.Errorf("key %s.%s: %w", key, sym, err)
		}
		out[a.ID] = v
	}
	return out, nil
}
