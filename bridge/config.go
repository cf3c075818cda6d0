package bridge

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/config"
	"github.com/tally-ledger/tally/internal/credentials"
)

// Duration is a time.Duration written as "10ms", "1s" in config files.
type Duration = config.Duration

// Config is the bridge's configuration file, bridge.toml. docs/bridge.md
// ("Configuration") documents every key. Relative paths in it are relative
// to the directory of the config file, so a bank can keep the file, the
// keystore and the secrets together and start the bridge from anywhere.
type Config struct {
	// Listen is the intake HTTP server's address (host:port).
	Listen string `toml:"listen"`
	// DataDir holds the bridge's own Pebble database.
	DataDir string `toml:"datadir"`
	// Asset is the symbol of the one asset this bridge mints and pays out.
	Asset string `toml:"asset"`

	Key      KeyConfig      `toml:"key"`
	Nodes    NodesConfig    `toml:"nodes"`
	BankCore BankCoreConfig `toml:"bankcore"`
	Auth     AuthConfig     `toml:"auth"`
	Operator OperatorConfig `toml:"operator"`
	Limits   LimitsConfig   `toml:"limits"`
	TLS      TLSConfig      `toml:"tls"`
	Outbox   OutboxConfig   `toml:"outbox"`
	Follower FollowerConfig `toml:"follower"`
	Payout   PayoutConfig   `toml:"payout"`
	Closer   CloserConfig   `toml:"closer"`
	Routing  RoutingConfig  `toml:"routing"`
	Log      LogConfig      `toml:"log"`

	// Dir is the config file's directory, against which relative paths
	// resolve (Path).
	config.Dir
}

// KeyConfig names the issuing bank's key (package credentials reads it).
type KeyConfig = credentials.KeyConfig

// NodesConfig lists the nodes' JSON-RPC endpoints. Calls go to one of them
// and move to the next (round robin) when it cannot be reached, answers
// with an HTTP 5xx or does not answer within Timeout; a JSON-RPC error is
// an answer and is not retried elsewhere.
type NodesConfig struct {
	Endpoints []string `toml:"endpoints"`
	Timeout   Duration `toml:"timeout"`
}

// BankCoreConfig is where payout orders go.
type BankCoreConfig struct {
	// URL is the core's base URL; orders are POSTed to URL + PayoutPath.
	URL        string `toml:"url"`
	PayoutPath string `toml:"payout-path"`
	// Format is "pain.001" (pain.001.001.09 XML) or "json".
	Format  string   `toml:"format"`
	Timeout Duration `toml:"timeout"`
	// DebtorName and DebtorAccount are the bank's omnibus account, written as
	// the debtor of every pain.001 order.
	DebtorName    string `toml:"debtor-name"`
	DebtorAccount string `toml:"debtor-account"`
	// DebtorAgentBIC and DebtorAgentMember identify the bank itself in a
	// pain.001 (DbtrAgt, and CdtrAgt: the accounts paid are the bank's
	// own customers'): its BIC and/or its clearing system member id
	// (ClearingSystem, e.g. "HKNCC", names the system).
	DebtorAgentBIC    string `toml:"debtor-agent-bic"`
	DebtorAgentMember string `toml:"debtor-agent-member"`
	ClearingSystem    string `toml:"clearing-system"`
	// InitiatingPartyID is the id the bank gave the bridge as its
	// customer (InitgPty/Id/OrgId/Othr/Id).
	InitiatingPartyID string `toml:"initiating-party-id"`
	// ServiceLevel (PmtTpInf/SvcLvl/Cd) and ChargeBearer (ChrgBr) of
	// every order.
	ServiceLevel string `toml:"service-level"`
	ChargeBearer string `toml:"charge-bearer"`
	// TimeZone is the bank's IANA time zone: the requested execution date
	// of an order is today there, refreshed on every re-send.
	TimeZone string `toml:"time-zone"`
	// TLS configures HTTPS to the core (its CA, the bridge's client certificate).
	TLS ClientTLSConfig `toml:"tls"`
}

// AuthConfig authenticates the bank core and the bridge to each other:
// every POST carries an HMAC-SHA256 signature over a timestamp and the
// body, with one secret per direction, so a secret leaked on one side
// neither forges deposits nor lets anyone pose as the bridge to the core.
type AuthConfig struct {
	// IntakeSecretFile: the core signs its POSTs to the bridge with it.
	IntakeSecretFile string `toml:"intake-secret-file"`
	// OrderSecretFile: the bridge signs its payout orders to the core.
	OrderSecretFile string `toml:"order-secret-file"`
	// SecretFile is the old single secret of both directions: refused,
	// naming the two keys above.
	SecretFile string   `toml:"secret-file"`
	MaxSkew    Duration `toml:"max-skew"`
}

// OperatorConfig configures the operator tools (docs/bridge.md, "Operator
// tools") and who may read /v1/status and /metrics.
type OperatorConfig struct {
	// TokensFile lists the operators: "<name> <token>" per line. Without
	// it no one can use the operator endpoints, /v1/status or /metrics.
	TokensFile string `toml:"tokens-file"`
	// Listen, when set, serves the operator endpoints, /v1/status and
	// /metrics on their own host:port (an internal network), and no
	// longer on listen, the intake the bank core reaches.
	Listen string `toml:"listen"`
}

// LimitsConfig bounds what one request can make the bridge hold in memory
// and keep on disk.
type LimitsConfig struct {
	MaxBodyBytes int `toml:"max-body-bytes"`
	MaxEntries   int `toml:"max-entries"`
	// MaxRefusals is how many refused inputs the store keeps for
	// /v1/status; older ones are dropped.
	MaxRefusals int `toml:"max-refusals"`
}

// OutboxConfig tunes the deposit outbox worker.
type OutboxConfig struct {
	PollInterval   Duration `toml:"poll-interval"`
	ReceiptTimeout Duration `toml:"receipt-timeout"`
	// MaxAttempts bounds how often one deposit's mint may revert for a
	// reason that a retry could fix before the deposit is held.
	MaxAttempts int `toml:"max-attempts"`
}

// FollowerConfig tunes the withdrawal follower.
type FollowerConfig struct {
	PollInterval Duration `toml:"poll-interval"`
	// MaxRange bounds the blocks one eth_getLogs covers.
	MaxRange uint64 `toml:"max-range"`
	// StartBlock is where a fresh bridge starts reading.
	StartBlock uint64 `toml:"start-block"`
}

// PayoutConfig tunes the payout sender.
type PayoutConfig struct {
	PollInterval Duration `toml:"poll-interval"`
	RetryMin     Duration `toml:"retry-min"`
	RetryMax     Duration `toml:"retry-max"`
}

// CloserConfig tunes the closer (settle or refund on chain).
type CloserConfig struct {
	PollInterval Duration `toml:"poll-interval"`
}

// RoutingConfig says how a deposit finds its wallet (docs/bridge.md,
// "Routing deposits"): By lists the ways this bank uses, of "account" (the
// debtor account is linked to a wallet), "creditor-reference" (an ISO
// 11649 RF reference registered for a wallet, in RmtInf/Strd/CdtrRefInf)
// and "virtual-account" (the account credited, TxDtls/RltdPties/CdtrAcct,
// is a virtual account number registered for a wallet). Strict holds a
// deposit whose ways name different wallets; otherwise the first way in
// By that names one wins.
type RoutingConfig struct {
	By     []string `toml:"by"`
	Strict bool     `toml:"strict"`
}

// LogConfig configures logging (package config checks it).
type LogConfig = config.Log

// Defaults of the bounds; the config file can change them.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxEntries   = 1000
	DefaultMaxRefusals  = 1000
)

// DefaultConfig returns the configuration of a bridge that sets only the
// required keys.
func DefaultConfig() Config {
	return Config{
		Listen:  "127.0.0.1:8600",
		DataDir: "bridge-data",
		Key:     KeyConfig{PasswordEnv: "TALLY_BRIDGE_PASSWORD"},
		Nodes:   NodesConfig{Timeout: Duration(10 * time.Second)},
		BankCore: BankCoreConfig{PayoutPath: "/v1/payment-orders", Format: "pain.001", Timeout: Duration(10 * time.Second), DebtorName: "Tally omnibus",
			ServiceLevel: "NURG", ChargeBearer: "DEBT", TimeZone: "UTC"},
		Auth:     AuthConfig{MaxSkew: Duration(5 * time.Minute)},
		Limits:   LimitsConfig{MaxBodyBytes: DefaultMaxBodyBytes, MaxEntries: DefaultMaxEntries, MaxRefusals: DefaultMaxRefusals},
		Outbox:   OutboxConfig{PollInterval: Duration(200 * time.Millisecond), ReceiptTimeout: Duration(30 * time.Second), MaxAttempts: 5},
		Follower: FollowerConfig{PollInterval: Duration(time.Second), MaxRange: 1000},
		Payout:   PayoutConfig{PollInterval: Duration(500 * time.Millisecond), RetryMin: Duration(time.Second), RetryMax: Duration(time.Minute)},
		Closer:   CloserConfig{PollInterval: Duration(500 * time.Millisecond)},
		Routing:  RoutingConfig{By: []string{RouteAccount}, Strict: true},
		Log:      LogConfig{Level: "info", Format: "text"},
	}
}

// LoadConfig reads a TOML config file over the defaults. Unknown keys and
// bad values are refused with an error naming the key.
func LoadConfig(path string) (Config, error) {
	return config.Load(path, "bridge", DefaultConfig())
}

// ParseConfig decodes a config file's content over cfg strictly and
// validates it; relative paths resolve against dir.
func ParseConfig(data []byte, dir string, cfg *Config) error { return config.Parse(data, dir, cfg) }

// Validate checks values; errors name the key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("key %s: %s", key, fmt.Sprintf(format, args...))
	}
	if err := validatePair("tls", c.TLS.CertFile, c.TLS.KeyFile); err != nil {
		return err
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		return bad("tls.client-ca-file", "mutual TLS needs the server's tls.cert-file and tls.key-file")
	}
	if err := validatePair("bankcore.tls", c.BankCore.TLS.CertFile, c.BankCore.TLS.KeyFile); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%q is not host:port: %v", c.Listen, err)
	}
	if c.DataDir == "" {
		return bad("datadir", "required")
	}
	if c.Asset == "" {
		return bad("asset", "required: the symbol of the asset this bridge issues (e.g. \"HKD\")")
	}
	if c.Key.KeystoreFile == "" {
		return bad("key.keystore-file", "required: the issuing bank's keystore v3 file")
	}
	if c.Key.PasswordFile == "" && c.Key.PasswordEnv == "" {
		return bad("key.password-file", "required unless key.password-env names an environment variable")
	}
	if len(c.Nodes.Endpoints) == 0 {
		return bad("nodes.endpoints", "required: at least one node JSON-RPC URL")
	}
	for i, e := range c.Nodes.Endpoints {
		if err := config.CheckURL(e); err != nil {
			return bad(fmt.Sprintf("nodes.endpoints[%d]", i), "%v", err)
		}
	}
	if c.BankCore.URL == "" {
		return bad("bankcore.url", "required: the bank core's base URL for payout orders")
	}
	if err := config.CheckURL(c.BankCore.URL); err != nil {
		return bad("bankcore.url", "%v", err)
	}
	if !strings.HasPrefix(c.BankCore.PayoutPath, "/") {
		return bad("bankcore.payout-path", "%q must start with /", c.BankCore.PayoutPath)
	}
	if c.BankCore.Format != FormatPain001 && c.BankCore.Format != FormatJSON {
		return bad("bankcore.format", "%q: use %q or %q", c.BankCore.Format, FormatPain001, FormatJSON)
	}
	if c.BankCore.DebtorName == "" || len(c.BankCore.DebtorName) > 140 {
		return bad("bankcore.debtor-name", "must be 1..140 characters")
	}
	if len(c.BankCore.DebtorAccount) > 34 {
		return bad("bankcore.debtor-account", "at most 34 characters (ISO 20022 Max34Text)")
	}
	if looksLikeIBAN(c.BankCore.DebtorAccount) {
		if err := iso20022.CheckIBAN(c.BankCore.DebtorAccount); err != nil {
			return bad("bankcore.debtor-account", "%v", err)
		}
	}
	if c.BankCore.Format == FormatPain001 && c.BankCore.DebtorAccount == "" {
		return bad("bankcore.debtor-account", "required with bankcore.format = %q: a pain.001 names the account it pays from", FormatPain001)
	}
	if c.BankCore.DebtorAgentBIC != "" && !bicPattern.MatchString(c.BankCore.DebtorAgentBIC) {
		return bad("bankcore.debtor-agent-bic", "%q is not a BIC (8 or 11 letters and digits)", c.BankCore.DebtorAgentBIC)
	}
	if len(c.BankCore.DebtorAgentMember) > 35 {
		return bad("bankcore.debtor-agent-member", "at most 35 characters")
	}
	if c.BankCore.ClearingSystem != "" && (c.BankCore.DebtorAgentMember == "" || !clearingPattern.MatchString(c.BankCore.ClearingSystem)) {
		return bad("bankcore.clearing-system", "%q: 1-5 upper-case letters or digits (e.g. HKNCC), with bankcore.debtor-agent-member", c.BankCore.ClearingSystem)
	}
	if len(c.BankCore.InitiatingPartyID) > 35 {
		return bad("bankcore.initiating-party-id", "at most 35 characters")
	}
	if !codePattern.MatchString(c.BankCore.ServiceLevel) {
		return bad("bankcore.service-level", "%q is not an ExternalServiceLevel1Code (e.g. NURG, URGP, SEPA)", c.BankCore.ServiceLevel)
	}
	switch c.BankCore.ChargeBearer {
	case "DEBT", "CRED", "SHAR", "SLEV":
	default:
		return bad("bankcore.charge-bearer", "%q: use DEBT, CRED, SHAR or SLEV", c.BankCore.ChargeBearer)
	}
	if _, err := time.LoadLocation(c.BankCore.TimeZone); err != nil || c.BankCore.TimeZone == "" || c.BankCore.TimeZone == "Local" {
		return bad("bankcore.time-zone", "%q is not an IANA time zone name (e.g. Asia/Hong_Kong, UTC)", c.BankCore.TimeZone)
	}
	if c.Auth.SecretFile != "" {
		return bad("auth.secret-file", "no longer accepted: one secret for both directions lets whoever learns it both forge deposits and pose as the bridge; use auth.intake-secret-file (the bank core signs its POSTs to the bridge) and auth.order-secret-file (the bridge signs its orders to the core), two different secrets")
	}
	if c.Auth.IntakeSecretFile == "" {
		return bad("auth.intake-secret-file", "required: the HMAC secret the bank core signs its POSTs to the bridge with")
	}
	if c.Auth.OrderSecretFile == "" {
		return bad("auth.order-secret-file", "required: the HMAC secret the bridge signs its payout orders to the bank core with")
	}
	if c.Operator.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Operator.Listen); err != nil {
			return bad("operator.listen", "%q is not host:port: %v", c.Operator.Listen, err)
		}
		if _, port, _ := net.SplitHostPort(c.Listen); c.Operator.Listen == c.Listen && port != "0" {
			return bad("operator.listen", "%q is listen too: give the operator endpoints their own address, or leave operator.listen empty", c.Operator.Listen)
		}
	}
	for key, d := range map[string]Duration{
		"nodes.timeout": c.Nodes.Timeout, "bankcore.timeout": c.BankCore.Timeout, "auth.max-skew": c.Auth.MaxSkew,
		"outbox.poll-interval": c.Outbox.PollInterval, "outbox.receipt-timeout": c.Outbox.ReceiptTimeout,
		"follower.poll-interval": c.Follower.PollInterval, "payout.poll-interval": c.Payout.PollInterval,
		"payout.retry-min": c.Payout.RetryMin, "payout.retry-max": c.Payout.RetryMax, "closer.poll-interval": c.Closer.PollInterval,
	} {
		if d <= 0 {
			return bad(key, "must be a positive duration")
		}
	}
	if c.Payout.RetryMax < c.Payout.RetryMin {
		return bad("payout.retry-max", "must be at least payout.retry-min")
	}
	if c.Limits.MaxBodyBytes < 1024 || c.Limits.MaxBodyBytes > 64<<20 {
		return bad("limits.max-body-bytes", "%d: must be 1024..%d", c.Limits.MaxBodyBytes, 64<<20)
	}
	if c.Limits.MaxEntries < 1 || c.Limits.MaxEntries > 100_000 {
		return bad("limits.max-entries", "%d: must be 1..100000", c.Limits.MaxEntries)
	}
	if c.Limits.MaxRefusals < 1 || c.Limits.MaxRefusals > 1_000_000 {
		return bad("limits.max-refusals", "%d: must be 1..1000000", c.Limits.MaxRefusals)
	}
	if c.Outbox.MaxAttempts < 1 {
		return bad("outbox.max-attempts", "must be at least 1")
	}
	if c.Follower.MaxRange < 1 {
		return bad("follower.max-range", "must be at least 1")
	}
	if len(c.Routing.By) == 0 {
		return bad("routing.by", "required: at least one of %q, %q, %q", RouteAccount, RouteCreditorReference, RouteVirtualAccount)
	}
	seen := map[string]bool{}
	for i, r := range c.Routing.By {
		if r != RouteAccount && r != RouteCreditorReference && r != RouteVirtualAccount || seen[r] {
			return bad(fmt.Sprintf("routing.by[%d]", i), "%q: use each of %q, %q, %q at most once", r, RouteAccount, RouteCreditorReference, RouteVirtualAccount)
		}
		seen[r] = true
	}
	return c.Log.Check()
}

var (
	bicPattern  = regexp.MustCompile(`^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$`)
	codePattern = regexp.MustCompile(`^[A-Z0-9]{1,4}$`)
	// clearingPattern is ExternalClearingSystemIdentification1Code's shape.
	clearingPattern = regexp.MustCompile(`^[A-Z0-9]{1,5}$`)
)

// Payout order formats (bankcore.format).
const (
	FormatPain001 = "pain.001"
	FormatJSON    = "json"
)

// NewLogger returns the logger the [log] section asks for, writing to w.
func (c *Config) NewLogger(w io.Writer) *slog.Logger { return c.Log.NewLogger(w) }
