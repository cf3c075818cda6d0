package merchant

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/config"
)

// Duration is a time.Duration written as "10ms", "1h" in config files.
type Duration = config.Duration

// Config is the notifier's configuration file, merchant.toml.
// docs/merchants.md documents every key and docs/config.md the ones that
// bound growth. Relative paths resolve against the file's directory.
type Config struct {
	// Listen serves the order API and /healthz (host:port).
	Listen string `toml:"listen"`
	// DataDir holds the notifier's own Pebble database.
	DataDir string `toml:"datadir"`

	Nodes   NodesConfig   `toml:"nodes"`
	Follow  FollowConfig  `toml:"follow"`
	API     APIConfig     `toml:"api"`
	Orders  OrdersConfig  `toml:"orders"`
	Webhook WebhookConfig `toml:"webhook"`
	Log     config.Log    `toml:"log"`

	dir string
}

// NodesConfig lists the nodes' JSON-RPC endpoints (calls fail over
// between them as the wallet client does).
type NodesConfig struct {
	Endpoints []string `toml:"endpoints"`
	Timeout   Duration `toml:"timeout"`
}

// FollowConfig tunes the follower.
type FollowConfig struct {
	PollInterval Duration `toml:"poll-interval"`
	// Batch is how many blocks one eth_getLogs covers (halved while the
	// node answers that a range holds too many logs).
	Batch int `toml:"batch"`
	// StartBlock is where a fresh notifier starts: payments in earlier
	// blocks are never matched.
	StartBlock uint64 `toml:"start-block"`
}

// APIConfig names who may use the order API.
type APIConfig struct {
	// TokensFile lists "<name> <token>" per line (the monitor's and the
	// bridge's operator format).
	TokensFile string `toml:"tokens-file"`
}

// OrdersConfig is the merchant's side of matching.
type OrdersConfig struct {
	// Payees are the merchant's accounts: an order's payee must be one,
	// and only payments to them are read.
	Payees []string `toml:"payees"`
	// Max bounds the orders kept; a registration beyond it is refused.
	Max int `toml:"max"`
	// MaxMovements bounds the payments and refunds one order lists (its
	// totals count every one).
	MaxMovements int `toml:"max-movements"`
	// Lookback is how many of the blocks the follower read already a
	// registration searches for payments under its reference (0: none).
	Lookback int `toml:"lookback"`
}

// WebhookConfig is the signed notifications' receiver (docs/merchants.md,
// "Webhooks").
type WebhookConfig struct {
	URL        string   `toml:"url"`
	SecretFile string   `toml:"secret-file"`
	Timeout    Duration `toml:"timeout"`
	RetryMin   Duration `toml:"retry-min"`
	RetryMax   Duration `toml:"retry-max"`
	MaxAge     Duration `toml:"max-age"`
	MaxPending int      `toml:"max-pending"`
}

// Defaults of the bounds.
const (
	DefaultMaxOrders    = 1_000_000
	DefaultMaxMovements = 100
	DefaultMaxPending   = 100_000
	DefaultBatch        = 1000
	DefaultLookback     = 10_000
	// maxBatch is the node's default bound on one eth_getLogs range
	// (http.max-log-block-range).
	maxBatch = 10_000
)

// DefaultConfig returns the configuration of a notifier that sets only
// the required keys.
func DefaultConfig() Config {
	return Config{
		Listen:  "127.0.0.1:8710",
		DataDir: "merchant-data",
		Nodes:   NodesConfig{Timeout: Duration(10 * time.Second)},
		Follow:  FollowConfig{PollInterval: Duration(500 * time.Millisecond), Batch: DefaultBatch},
		Orders:  OrdersConfig{Max: DefaultMaxOrders, MaxMovements: DefaultMaxMovements, Lookback: DefaultLookback},
		Webhook: WebhookConfig{Timeout: Duration(10 * time.Second), RetryMin: Duration(time.Second), RetryMax: Duration(10 * time.Minute),
			MaxAge: Duration(72 * time.Hour), MaxPending: DefaultMaxPending},
		Log: config.Log{Level: "info", Format: "text"},
	}
}

// LoadConfig reads a TOML config file over the defaults. Unknown keys and
// bad values are refused with an error naming the key.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, dir, err := config.Read(path)
	if err != nil {
		return cfg, fmt.Errorf("read merchant config: %w", err)
	}
	if err := ParseConfig(data, dir, &cfg); err != nil {
		return cfg, fmt.Errorf("merchant config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes a config file's content over cfg strictly and
// validates it; relative paths resolve against dir.
func ParseConfig(data []byte, dir string, cfg *Config) error {
	if err := config.Decode(data, cfg); err != nil {
		return err
	}
	cfg.dir = dir
	return cfg.Validate()
}

// Path resolves a path from the config file against its directory.
func (c *Config) Path(p string) string { return config.Resolve(c.dir, p) }

// payees are orders.payees as addresses (Validate checked them).
func (c *Config) payees() []common.Address {
	out := make([]common.Address, len(c.Orders.Payees))
	for i, s := range c.Orders.Payees {
		out[i] = common.HexToAddress(s)
	}
	return out
}

// NewLogger returns the logger the [log] section asks for, writing to w.
func (c *Config) NewLogger(w io.Writer) *slog.Logger { return c.Log.NewLogger(w) }

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
	if c.Follow.Batch < 1 || c.Follow.Batch > maxBatch {
		return bad("follow.batch", "%d: must be 1..%d (a node answers eth_getLogs over at most http.max-log-block-range blocks)", c.Follow.Batch, maxBatch)
	}
	if len(c.Orders.Payees) == 0 {
		return bad("orders.payees", "required: the merchant's accounts that orders are paid to")
	}
	seen := map[common.Address]bool{}
	for i, s := range c.Orders.Payees {
		if !common.IsHexAddress(s) {
			return bad(fmt.Sprintf("orders.payees[%d]", i), "%q is not an address (0x and 40 hex digits)", s)
		}
		p := common.HexToAddress(s)
		if p == (common.Address{}) || seen[p] {
			return bad(fmt.Sprintf("orders.payees[%d]", i), "%s: the zero address or listed twice", p)
		}
		seen[p] = true
	}
	if len(c.Orders.Payees) > 100 {
		return bad("orders.payees", "%d accounts: at most 100", len(c.Orders.Payees))
	}
	for _, d := range []struct {
		key string
		d   Duration
	}{
		{"nodes.timeout", c.Nodes.Timeout}, {"follow.poll-interval", c.Follow.PollInterval},
		{"webhook.timeout", c.Webhook.Timeout}, {"webhook.retry-min", c.Webhook.RetryMin}, {"webhook.retry-max", c.Webhook.RetryMax},
		{"webhook.max-age", c.Webhook.MaxAge},
	} {
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
	for _, b := range []struct {
		key       string
		v, lo, hi int
	}{
		{"orders.max", c.Orders.Max, 1, 100_000_000},
		{"orders.max-movements", c.Orders.MaxMovements, 1, 10_000},
		{"orders.lookback", c.Orders.Lookback, 0, maxBatch},
		{"webhook.max-pending", c.Webhook.MaxPending, 1, 10_000_000},
	} {
		if b.v < b.lo || b.v > b.hi {
			return bad(b.key, "%d: must be %d..%d", b.v, b.lo, b.hi)
		}
	}
	return c.Log.Check()
}
