package bankcore

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tally-ledger/tally/config"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// Duration is a time.Duration written as a Go duration string ("500ms").
type Duration = config.Duration

// Config is the simulator's configuration (sim.toml). Relative paths are
// relative to the file's directory. An unknown key is refused, so a typo
// is an error rather than a knob silently left at its default.
type Config struct {
	// Listen is the simulator's own HTTP address: the payout path the
	// bridge posts to, and the /sim/ admin endpoints.
	Listen string `toml:"listen"`
	// BridgeURL is the bridge's base URL; NotificationsPath and StatusPath
	// are appended to it (docs/bridge.md, HTTP interface).
	BridgeURL         string `toml:"bridge-url"`
	NotificationsPath string `toml:"notifications-path"`
	StatusPath        string `toml:"status-path"`
	// PayoutPath is where the bridge POSTs payout orders
	// (its bankcore.payout-path).
	PayoutPath string `toml:"payout-path"`
	// SecretFile holds the HMAC secret shared with the bridge (the file's
	// bytes, surrounding white space removed, at least 16 bytes).
	// It signs the simulator's POSTs to the bridge (the bridge's
	// auth.intake-secret-file).
	SecretFile string `toml:"secret-file"`
	// OrderSecretFile verifies the bridge's payout orders (the bridge's
	// auth.order-secret-file, which must differ from its intake secret);
	// empty: secret-file.
	OrderSecretFile string   `toml:"order-secret-file"`
	MaxSkew         Duration `toml:"max-skew"`
	// Currency is the omnibus account's currency (the bridge's asset).
	Currency       string `toml:"currency"`
	OmnibusAccount string `toml:"omnibus-account"`
	OmnibusName    string `toml:"omnibus-name"`
	// OpeningBalance is the omnibus account's balance before the first
	// booking (a credit balance).
	OpeningBalance string `toml:"opening-balance"`
	// StatusDelay is how long after accepting a payout order the
	// simulator books it and answers with a pain.002.
	StatusDelay Duration `toml:"status-delay"`
	// RetryInterval is the pause between deliveries to a bridge that does
	// not answer (or answers 5xx).
	RetryInterval Duration `toml:"retry-interval"`
	Timeout       Duration `toml:"timeout"`
	// SnapshotFile, when set, keeps the ledger as JSON across restarts.
	SnapshotFile string `toml:"snapshot-file"`
	// StatementFile, when set, receives a camt.053 of the omnibus account
	// when the simulator stops.
	StatementFile string `toml:"statement-file"`
	// ScriptFile, when set, holds deposits booked and notified at start:
	// JSON, the body POST /sim/deposits takes.
	ScriptFile string `toml:"script-file"`
	// Reject is the standing rejection rule (POST /sim/faults changes it).
	Reject RejectRule `toml:"reject"`
	// ProgressReports: report ACTC (group level) when an order arrives and
	// ACCP (transaction level) before its final status, as gateways do.
	ProgressReports bool `toml:"progress-reports"`
	// NotifyDebits: notify every executed payout as a camt.054 debit entry
	// too (banks do, for accounts subscribed to debit notifications).
	NotifyDebits bool `toml:"notify-debits"`
	// Random is the seeded random mode (off while random.seed is 0).
	Random RandomConfig `toml:"random"`

	// Dir is the config file's directory, against which relative paths
	// resolve (Path).
	config.Dir
}

// RejectRule says which payout orders the simulator rejects: those to one
// of Accounts, with one of EndToEndIDs, or of more than Above. Reason is
// the pain.002 reason, "<ISO code> <text>" (e.g. "AC04 account closed").
type RejectRule struct {
	Accounts    []string `toml:"accounts" json:"accounts,omitempty"`
	EndToEndIDs []string `toml:"end-to-end-ids" json:"endToEndIds,omitempty"`
	Above       string   `toml:"above" json:"above,omitempty"`
	Reason      string   `toml:"reason" json:"reason,omitempty"`
}

// DefaultConfig returns the defaults of every key.
func DefaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:8700",
		NotificationsPath: "/v1/notifications",
		StatusPath:        "/v1/payment-status",
		PayoutPath:        "/v1/payment-orders",
		MaxSkew:           Duration(5 * time.Minute),
		OmnibusAccount:    "SIM-OMNIBUS-0001",
		OmnibusName:       "Tally omnibus",
		OpeningBalance:    "0",
		StatusDelay:       Duration(200 * time.Millisecond),
		RetryInterval:     Duration(500 * time.Millisecond),
		Timeout:           Duration(5 * time.Second),
		Reject:            RejectRule{Reason: "AC04 account closed"},
		ProgressReports:   true,
		Random:            RandomConfig{MaxDelay: Duration(time.Second)},
	}
}

// LoadConfig reads a sim.toml over the defaults, strictly, and validates it.
func LoadConfig(path string) (Config, error) {
	return config.Load(path, "bankcore-sim", DefaultConfig())
}

// ParseConfig decodes a config over cfg, refusing unknown keys, and
// validates it; relative paths resolve against dir.
func ParseConfig(data []byte, dir string, cfg *Config) error { return config.Parse(data, dir, cfg) }

// Validate checks every key, naming the first bad one.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return errors.New("key listen: required")
	}
	if c.BridgeURL == "" {
		return errors.New("key bridge-url: required (the bridge's base URL, e.g. http://127.0.0.1:8600)")
	}
	if u, err := url.Parse(c.BridgeURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("key bridge-url: %q is not an http(s) URL", c.BridgeURL)
	}
	for _, p := range []struct{ key, v string }{{"notifications-path", c.NotificationsPath}, {"status-path", c.StatusPath}, {"payout-path", c.PayoutPath}} {
		if !strings.HasPrefix(p.v, "/") {
			return fmt.Errorf("key %s: %q must start with /", p.key, p.v)
		}
		if strings.HasPrefix(p.v, "/sim/") {
			return fmt.Errorf("key %s: %q is under /sim/, the admin endpoints", p.key, p.v)
		}
	}
	if c.SecretFile == "" {
		return errors.New("key secret-file: required (the HMAC secret shared with the bridge)")
	}
	if c.MaxSkew <= 0 {
		return errors.New("key max-skew: must be positive")
	}
	if !currencyCode.MatchString(c.Currency) {
		return fmt.Errorf("key currency: %q is not an ISO 4217 code (three upper-case letters)", c.Currency)
	}
	if c.OmnibusAccount == "" || len(c.OmnibusAccount) > 34 {
		return fmt.Errorf("key omnibus-account: %q must be 1 to 34 characters", c.OmnibusAccount)
	}
	if ibanPattern.MatchString(c.OmnibusAccount) {
		if err := iso20022.CheckIBAN(c.OmnibusAccount); err != nil {
			return fmt.Errorf("key omnibus-account: %w (an account with an IBAN's shape is written as an IBAN)", err)
		}
	}
	if c.OmnibusName == "" || len(c.OmnibusName) > 140 {
		return errors.New("key omnibus-name: must be 1 to 140 characters")
	}
	if err := iso20022.ValidateAmount(c.OpeningBalance); err != nil {
		return fmt.Errorf("key opening-balance: %w", err)
	}
	if c.StatusDelay < 0 {
		return errors.New("key status-delay: must not be negative")
	}
	if c.RetryInterval <= 0 {
		return errors.New("key retry-interval: must be positive")
	}
	if c.Timeout <= 0 {
		return errors.New("key timeout: must be positive")
	}
	if err := c.Reject.validate(); err != nil {
		return fmt.Errorf("key reject.%w", err)
	}
	if err := c.Random.validate(); err != nil {
		return fmt.Errorf("key random.%w", err)
	}
	return nil
}

func (r *RejectRule) validate() error {
	if r.Above != "" {
		if err := iso20022.ValidateAmount(r.Above); err != nil {
			return fmt.Errorf("above: %w", err)
		}
	}
	if _, err := reasonOf(r.Reason); err != nil {
		return fmt.Errorf("reason: %w", err)
	}
	return nil
}

// The forms the simulator writes into ISO 20022 messages: a currency is
// ActiveOrHistoricCurrencyCode, a reason code an ExternalStatusReason1Code
// of the published list (four upper-case letters or digits), and the
// reason's text one Max105Text (105 characters, not bytes).
var (
	currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)
	reasonCode   = regexp.MustCompile(`^[A-Z0-9]{4}$`)
)

const maxReasonText = 105

// reasonOf turns "AC04 account closed" into a pain.002 status reason: an
// ISO external reason code (four characters) and the rest as text.
func reasonOf(s string) (iso20022.StatusReason, error) {
	code, text, _ := strings.Cut(strings.TrimSpace(s), " ")
	if !reasonCode.MatchString(code) {
		return iso20022.StatusReason{}, fmt.Errorf("%q must start with an ISO reason code such as AC04, AM04 or MS03", s)
	}
	r := iso20022.StatusReason{Code: code}
	if text = strings.TrimSpace(text); text != "" {
		r.AdditionalInfo = []string{truncate(text, maxReasonText)}
	}
	return r, nil
}
