package genesis

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// Genesis is the content of a genesis file.
type Genesis struct {
	// ChainID is the EIP-155 chain id every transaction must carry.
	ChainID uint64 `json:"chainId"`
	// TimestampMs is block 0's time in milliseconds since the Unix epoch.
	TimestampMs uint64 `json:"timestampMs"`
	// Rules are the consortium's rules at height 0 (assets, banks,
	// compliance, governance, tiers); governance changes them later.
	Rules
	// Validators may propose blocks; their keys are the nodes' keys.
	Validators []Validator `json:"validators"`
	// Alloc lists the initial accounts: tier and balances per asset.
	// Genesis allocations count as minted at height 0.
	Alloc []Allocation `json:"alloc"`
}

// Rules are the parts of the genesis that the state keeps and governance
// may change. Assets[0] is the native asset.
type Rules struct {
	// Assets are the consortium's currencies; Assets[i] has asset id i and
	// its ERC-20 facade at chain.AssetAddress(i). Assets[0] is the native
	// asset, moved by a transaction's value (18 decimals).
	Assets []Asset `json:"assets"`
	// Compliance is the compliance authority's account: it sets KYC tiers,
	// freezes accounts and orders forced transfers.
	Compliance common.Address `json:"compliance"`
	// Governance are the members who approve rule changes (Step 4).
	Governance Governance `json:"governance"`
	// Tiers are the KYC tiers: Tiers[t] holds tier t's limits. Accounts
	// start at tier 0, which may only receive.
	Tiers []Tier `json:"tiers"`
	// Risk are the preventive risk rules (velocity caps and automatic
	// suspensions, risk.go); absent means none, and encodes as before
	// risk rules existed.
	Risk *Risk `json:"risk,omitempty"`
	// Payments are the times of the payment-trust operations (payments.go:
	// confirmation of large payments, disputes); absent means the
	// defaults, and encodes as before they existed.
	Payments *Payments `json:"payments,omitempty"`
}

// Asset describes an asset and who may issue it.
type Asset struct {
	Symbol   string `json:"symbol"`
	Name     string `json:"name"`
	Decimals uint8  `json:"decimals"`
	// Banks are the accounts allowed to mint this asset and settle or
	// refund its withdrawals.
	Banks []common.Address `json:"banks"`
	// Paused stops every operation that moves the asset, except the
	// outcomes of withdrawals (claim, settle, refund, return) and
	// cancelling offers (governance sets it).
	Paused bool `json:"paused,omitempty"`
	// MinorUnits is how many decimal places the currency has (ISO 4217):
	// a withdrawal must be a whole number of minor units, since the bank
	// can pay nothing smaller. Absent means DefaultMinorUnits(symbol,
	// decimals); at most Decimals.
	MinorUnits *uint8 `json:"minorUnits,omitempty"`
	// IssuanceCaps bound what a bank may have outstanding (its mints and
	// returns minus its settlements and reversals, in base units); a bank
	// without an entry is uncapped. Governance sets them.
	IssuanceCaps []IssuanceCap `json:"issuanceCaps,omitempty"`
	// DisputeWindowSeconds is how long after a payment under a reference
	// (transferWithReference) its payer may open a dispute on it; 0 (absent)
	// means the asset takes no disputes, and its payments are recorded as
	// before disputes existed. At most MaxDisputeWindowSeconds.
	DisputeWindowSeconds uint64 `json:"disputeWindowSeconds,omitempty"`
}

// IssuanceCap is one bank's cap on its outstanding issuance of an asset.
type IssuanceCap struct {
	Bank common.Address `json:"bank"`
	Cap  Amount         `json:"cap"`
}

// Minor returns the asset's minor units: MinorUnits, or the default.
func (a Asset) Minor() uint8 {
	if a.MinorUnits != nil {
		return *a.MinorUnits
	}
	return DefaultMinorUnits(a.Symbol, a.Decimals)
}

// Format renders base units of the asset in its units with its symbol, as
// people read an amount: 1250 base units of a 2-decimal asset are
// "12.50 HKD" (FormatUnits with the asset's minor units).
func (a Asset) Format(v *big.Int) string {
	return FormatUnits(v, a.Decimals, a.Minor()) + " " + a.Symbol
}

// FormatUnits renders base units as a decimal amount with decimals, and at
// least minor (capped at decimals) fractional digits; more only when they
// are not zero, so the text is exact: FormatUnits(1250, 2, 2) is "12.50",
// FormatUnits(10^18, 18, 2) is "1.00", FormatUnits(1, 18, 2) is
// "0.000000000000000001".
func FormatUnits(v *big.Int, decimals, minor uint8) string {
	if v == nil {
		v = new(big.Int)
	}
	minor = min(minor, decimals)
	sign := ""
	if v.Sign() < 0 {
		sign = "-"
	}
	digits := new(big.Int).Abs(v).String()
	d := int(decimals)
	if d == 0 {
		return sign + digits
	}
	if len(digits) <= d {
		digits = strings.Repeat("0", d-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-d], digits[len(digits)-d:]
	keep := len(strings.TrimRight(frac, "0"))
	frac = frac[:max(keep, int(minor))]
	if frac == "" {
		return sign + whole
	}
	return sign + whole + "." + frac
}

// CapOf returns bank's issuance cap, or nil when it has none.
func (a Asset) CapOf(bank common.Address) *big.Int {
	for _, c := range a.IssuanceCaps {
		if c.Bank == bank {
			return c.Cap.Int
		}
	}
	return nil
}

// Governance is the set of members that approve rule changes m-of-n.
type Governance struct {
	Members   []common.Address `json:"members"`
	Threshold int              `json:"threshold"`
	// ActivationDelay is how many blocks after its approval a change takes
	// effect, so the leader can reconcile Raft membership first.
	ActivationDelay uint64 `json:"activationDelay"`
}

// Tier is a KYC tier: per-asset limits keyed by asset symbol. An asset
// missing from Limits, or a missing limit, is unlimited.
type Tier struct {
	Name   string            `json:"name"`
	Limits map[string]Limits `json:"limits,omitempty"`
}

// Limits bound what an account of a tier may hold and move of one asset, in
// base units. A nil limit is no limit.
type Limits struct {
	// MaxBalance bounds the account's balance after any credit.
	MaxBalance *Amount `json:"maxBalance,omitempty"`
	// MaxTransfer bounds the amount of one outgoing transfer or withdrawal.
	MaxTransfer *Amount `json:"maxTransfer,omitempty"`
	// MaxDailyOutflow bounds the sum sent or withdrawn per UTC day of block time.
	MaxDailyOutflow *Amount `json:"maxDailyOutflow,omitempty"`
}

// Validator is a node allowed to propose and vote.
type Validator struct {
	// Name is an operator-facing label (e.g. the bank's name).
	Name string `json:"name"`
	// PublicKey is the node key's compressed secp256k1 public key (33 bytes, hex).
	PublicKey hexutil.Bytes `json:"publicKey"`
}

// Address returns the validator's account address (the block proposer).
func (v Validator) Address() (common.Address, error) {
	pub, err := ethcrypto.DecompressPubkey(v.PublicKey)
	if err != nil {
		return common.Address{}, fmt.Errorf("validator %q: publicKey: %w", v.Name, err)
	}
	return ethcrypto.PubkeyToAddress(*pub), nil
}

// Allocation is an initial account.
type Allocation struct {
	Address common.Address `json:"address"`
	// Tier is the account's KYC tier.
	Tier uint8 `json:"tier"`
	// Balances are base units per asset symbol, as decimal strings.
	Balances map[string]Amount `json:"balances,omitempty"`
}

// Big returns the amount as a *big.Int; nil for a nil amount (no limit).
func (a *Amount) Big() *big.Int {
	if a == nil {
		return nil
	}
	return a.Int
}

// Amount is a non-negative integer written in JSON as a decimal string
// (numbers of 10^30 do not fit a JSON number safely).
type Amount struct{ *big.Int }

// MarshalJSON writes a decimal string.
func (a Amount) MarshalJSON() ([]byte, error) {
	if a.Int == nil {
		return []byte(`"0"`), nil
	}
	return json.Marshal(a.String())
}

// UnmarshalJSON reads a decimal string.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("amount must be a decimal string: %w", err)
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok || v.Sign() < 0 {
		return fmt.Errorf("amount %q is not a non-negative decimal integer", s)
	}
	a.Int = v
	return nil
}

// Bounds on what a genesis file may hold.
const (
	MaxValidators = chain.MaxValidators
	MaxAssets     = 256
	MaxBanks      = 64
	MaxTiers      = 16
	MaxMembers    = 64
	// MaxActivationDelay bounds governance.activationDelay (blocks).
	MaxActivationDelay = 1_000_000
)

// ErrInvalid is wrapped by every error from Parse and Validate.
var ErrInvalid = errors.New("invalid genesis")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate checks the genesis for consistency; errors name the field.
func (g *Genesis) Validate() error {
	if g.ChainID == 0 {
		return invalid("chainId must be > 0")
	}
	if err := g.Rules.Validate(); err != nil {
		return err
	}
	if len(g.Validators) == 0 || len(g.Validators) > MaxValidators {
		return invalid("validators: need 1..%d, have %d", MaxValidators, len(g.Validators))
	}
	seen := map[common.Address]bool{}
	for i, v := range g.Validators {
		if len(v.PublicKey) != 33 {
			return invalid("validators[%d].publicKey must be a 33-byte compressed key", i)
		}
		addr, err := v.Address()
		if err != nil {
			return invalid("validators[%d].publicKey: %v", i, err)
		}
		if seen[addr] {
			return invalid("validators[%d]: duplicate key", i)
		}
		seen[addr] = true
	}
	allocs := map[common.Address]bool{}
	for i, a := range g.Alloc {
		if err := accountAddress(a.Address); err != nil {
			return invalid("alloc[%d].address: %v", i, err)
		}
		if allocs[a.Address] {
			return invalid("alloc[%d]: duplicate address %s", i, a.Address)
		}
		allocs[a.Address] = true
		if int(a.Tier) >= len(g.Tiers) {
			return invalid("alloc[%d].tier %d: only tiers 0..%d exist", i, a.Tier, len(g.Tiers)-1)
		}
		for _, sym := range slices.Sorted(maps.Keys(a.Balances)) { // sorted: the same file always gives the same error
			bal := a.Balances[sym]
			id, ok := g.AssetID(sym)
			if !ok {
				return invalid("alloc[%d].balances: unknown asset %q", i, sym)
			}
			if bal.Int == nil || bal.BitLen() > 255 {
				return invalid("alloc[%d].balances.%s must be below 2^255", i, sym)
			}
			if max := g.Tiers[a.Tier].Limits[g.Assets[id].Symbol].MaxBalance; max != nil && bal.Cmp(max.Int) > 0 {
				return invalid("alloc[%d].balances.%s exceeds tier %d's maxBalance", i, sym, a.Tier)
			}
		}
	}
	return nil
}

// Validate checks the rules for consistency; errors name the field.
func (r *Rules) Validate() error {
	if len(r.Assets) == 0 || len(r.Assets) > MaxAssets {
		return invalid("assets: need 1..%d, have %d", MaxAssets, len(r.Assets))
	}
	if r.Assets[0].Decimals != 18 {
		return invalid("assets[0].decimals must be 18: it is the native asset (wallets show a native currency only with 18)")
	}
	symbols := map[string]bool{}
	for i, a := range r.Assets {
		if !validSymbol(a.Symbol) {
			return invalid("assets[%d].symbol %q must be 1..11 characters A-Z or 0-9", i, a.Symbol)
		}
		if symbols[a.Symbol] {
			return invalid("assets[%d].symbol %q is used twice", i, a.Symbol)
		}
		symbols[a.Symbol] = true
		if a.Decimals > 18 {
			return invalid("assets[%d].decimals must be 0..18", i)
		}
		if len(a.Name) > 64 {
			return invalid("assets[%d].name is longer than 64 bytes", i)
		}
		if len(a.Banks) > MaxBanks {
			return invalid("assets[%d].banks: at most %d", i, MaxBanks)
		}
		if err := distinctNonZero(a.Banks); err != nil {
			return invalid("assets[%d].banks: %v", i, err)
		}
		if a.MinorUnits != nil && *a.MinorUnits > a.Decimals {
			return invalid("assets[%d].minorUnits %d is more than its decimals %d", i, *a.MinorUnits, a.Decimals)
		}
		capped := map[common.Address]bool{}
		for j, c := range a.IssuanceCaps {
			switch {
			case !slices.Contains(a.Banks, c.Bank):
				return invalid("assets[%d].issuanceCaps[%d].bank %s is not an issuing bank of %s", i, j, c.Bank, a.Symbol)
			case capped[c.Bank]:
				return invalid("assets[%d].issuanceCaps[%d].bank %s appears twice", i, j, c.Bank)
			case c.Cap.Int == nil || c.Cap.BitLen() > 255:
				return invalid("assets[%d].issuanceCaps[%d].cap must be below 2^255", i, j)
			}
			capped[c.Bank] = true
		}
	}
	if err := accountAddress(r.Compliance); err != nil {
		return invalid("compliance: %v", err)
	}
	gm := r.Governance.Members
	if len(gm) == 0 || len(gm) > MaxMembers {
		return invalid("governance.members: need 1..%d, have %d", MaxMembers, len(gm))
	}
	if err := distinctNonZero(gm); err != nil {
		return invalid("governance.members: %v", err)
	}
	if r.Governance.Threshold < 1 || r.Governance.Threshold > len(gm) {
		return invalid("governance.threshold must be 1..%d", len(gm))
	}
	if r.Governance.ActivationDelay < 1 || r.Governance.ActivationDelay > MaxActivationDelay {
		return invalid("governance.activationDelay must be 1..%d blocks", MaxActivationDelay)
	}
	if len(r.Tiers) == 0 || len(r.Tiers) > MaxTiers {
		return invalid("tiers: need 1..%d, have %d", MaxTiers, len(r.Tiers))
	}
	for t, tier := range r.Tiers {
		for _, sym := range slices.Sorted(maps.Keys(tier.Limits)) {
			l := tier.Limits[sym]
			if !symbols[sym] {
				return invalid("tiers[%d].limits: unknown asset %q", t, sym)
			}
			for name, v := range map[string]*Amount{"maxBalance": l.MaxBalance, "maxTransfer": l.MaxTransfer, "maxDailyOutflow": l.MaxDailyOutflow} {
				if v != nil && (v.Int == nil || v.BitLen() > 255) {
					return invalid("tiers[%d].limits.%s.%s must be below 2^255", t, sym, name)
				}
			}
		}
	}
	if err := r.validatePayments(); err != nil {
		return err
	}
	return r.validateRisk()
}

// AssetID returns the id of the asset with the symbol.
func (r *Rules) AssetID(symbol string) (uint32, bool) {
	for i, a := range r.Assets {
		if a.Symbol == symbol {
			return uint32(i), true
		}
	}
	return 0, false
}

// Native returns the native asset.
func (r *Rules) Native() Asset { return r.Assets[0] }

// TopTier is the highest tier.
func (r *Rules) TopTier() uint8 { return uint8(len(r.Tiers) - 1) }

// Clone returns a deep copy.
func (r *Rules) Clone() *Rules {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("encode rules: %v", err))
	}
	var c Rules
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("decode rules: %v", err))
	}
	return &c
}

// ParseRules decodes and validates rules as the state stores them.
func ParseRules(data []byte) (*Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Rules
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: rules: %v", ErrInvalid, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Encode returns the canonical JSON form of the rules.
func (r *Rules) Encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("encode rules: %v", err)) // plain data always encodes
	}
	return b
}

func validSymbol(s string) bool {
	if len(s) == 0 || len(s) > 11 {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// accountAddress refuses addresses no key can hold: the zero address and
// the system contracts' (money allocated there could never move).
func accountAddress(a common.Address) error {
	if a == (common.Address{}) {
		return errors.New("the zero address is not an account")
	}
	if chain.IsSystemAddress(a) {
		return fmt.Errorf("%s is a system contract address, not an account", a)
	}
	return nil
}

func distinctNonZero(as []common.Address) error {
	seen := map[common.Address]bool{}
	for _, a := range as {
		if err := accountAddress(a); err != nil {
			return err
		}
		if seen[a] {
			return fmt.Errorf("%s appears twice", a)
		}
		seen[a] = true
	}
	return nil
}

// ValidatorAddresses returns the validators' addresses in genesis order.
func (g *Genesis) ValidatorAddresses() []common.Address {
	out := make([]common.Address, 0, len(g.Validators))
	for _, v := range g.Validators {
		a, err := v.Address()
		if err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Canonical returns the canonical JSON encoding that Hash commits to.
func (g *Genesis) Canonical() []byte {
	b, err := json.Marshal(g)
	if err != nil {
		panic(fmt.Sprintf("encode genesis: %v", err)) // plain data always encodes
	}
	return b
}

// Hash is keccak256 of the canonical encoding; block 0 carries it.
func (g *Genesis) Hash() common.Hash { return crypto.Keccak256(g.Canonical()) }

// ChainIDBig returns the chain id as a big.Int, as go-ethereum's signer wants it.
func (g *Genesis) ChainIDBig() *big.Int { return new(big.Int).SetUint64(g.ChainID) }

// Parse decodes and validates a genesis file's content. Unknown fields are refused.
func Parse(data []byte) (*Genesis, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var g Genesis
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// Load reads and parses a genesis file.
func Load(path string) (*Genesis, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read genesis: %w", err)
	}
	g, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	return g, nil
}

//go:embed dev.json
var devJSON []byte

// Dev returns the embedded dev genesis (docs/dev-chain.md): chain id 1337,
// assets CNY (native) and HKD, two banks, a compliance authority, three
// governance members and one validator, every key derived from
// crypto.TestMnemonic; the first DevAccounts accounts at the top tier
// holding both assets.
func Dev() *Genesis {
	g, err := Parse(devJSON)
	if err != nil {
		panic(fmt.Sprintf("embedded dev genesis: %v", err))
	}
	return g
}

// DevJSON returns the embedded dev genesis file.
func DevJSON() []byte { return bytes.Clone(devJSON) }

// Dev chain constants: BIP44 indexes (m/44'/60'/0'/0/i of the test
// mnemonic) of every role, and the dev balances.
const (
	DevChainID = 1337
	// DevAccounts is how many accounts of the test mnemonic the dev genesis
	// funds (indexes 0..DevAccounts-1), all at the top tier.
	DevAccounts = 20
	// DevBankAIndex issues CNY; DevBankBIndex issues CNY and HKD.
	DevBankAIndex = 100
	DevBankBIndex = 101
	// DevComplianceIndex is the compliance authority.
	DevComplianceIndex = 200
	// DevGovernanceIndex is the first of DevGovernanceMembers members.
	DevGovernanceIndex   = 300
	DevGovernanceMembers = 3
	// DevValidatorIndex is the dev node key.
	DevValidatorIndex = 1000
)

// Dev tiers.
const (
	DevTierUnverified    = 0
	DevTierBasic         = 1
	DevTierFull          = 2
	DevTierInstitutional = 3
)

// DevBalance is each dev account's CNY balance: 10^30 base units (10^12 CNY).
var DevBalance = new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)

// DevHKDBalance is each dev account's HKD balance: 10^14 base units (10^12 HKD).
var DevHKDBalance = new(big.Int).Exp(big.NewInt(10), big.NewInt(14), nil)

// DevKey returns the key of dev account i (m/44'/60'/0'/0/i of the test mnemonic).
func DevKey(i uint32) (*crypto.PrivateKey, error) {
	return crypto.KeyFromMnemonic(crypto.TestMnemonic, "", i)
}

// DevAddress returns the address of dev account i.
func DevAddress(i uint32) (common.Address, error) {
	k, err := DevKey(i)
	if err != nil {
		return common.Address{}, err
	}
	return k.Address(), nil
}

// units returns n whole units of an asset with the decimals, as an *Amount.
func units(n int64, decimals uint8) *Amount {
	v := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil)
	return &Amount{v.Mul(v, big.NewInt(n))}
}

// devLimits are one tier's limits in whole CNY and HKD.
func devLimits(balance, transfer, daily int64) map[string]Limits {
	return map[string]Limits{
		"CNY": {MaxBalance: units(balance, 18), MaxTransfer: units(transfer, 18), MaxDailyOutflow: units(daily, 18)},
		"HKD": {MaxBalance: units(balance, 2), MaxTransfer: units(transfer, 2), MaxDailyOutflow: units(daily, 2)},
	}
}

// BuildDev computes the dev genesis from the test mnemonic; dev.json must equal
// its encoding (a test checks it), so the embedded file cannot drift.
func BuildDev() (*Genesis, error) {
	addr := func(i uint32) common.Address {
		a, err := DevAddress(i)
		if err != nil {
			panic(fmt.Sprintf("derive dev account %d: %v", i, err)) // the mnemonic is a constant
		}
		return a
	}
	vkey, err := DevKey(DevValidatorIndex)
	if err != nil {
		return nil, err
	}
	bankA, bankB := addr(DevBankAIndex), addr(DevBankBIndex)
	g := &Genesis{
		ChainID:     DevChainID,
		TimestampMs: 1767225600000, // 2026-01-01T00:00:00Z
		Rules: Rules{
			Assets: []Asset{
				{Symbol: "CNY", Name: "Chinese Yuan", Decimals: 18, Banks: []common.Address{bankA, bankB}},
				{Symbol: "HKD", Name: "Hong Kong Dollar", Decimals: 2, Banks: []common.Address{bankB}},
			},
			Compliance: addr(DevComplianceIndex),
			Tiers: []Tier{
				{Name: "unverified", Limits: map[string]Limits{
					"CNY": {MaxBalance: units(1000, 18), MaxTransfer: units(0, 18), MaxDailyOutflow: units(0, 18)},
					"HKD": {MaxBalance: units(1000, 2), MaxTransfer: units(0, 2), MaxDailyOutflow: units(0, 2)},
				}},
				{Name: "basic", Limits: devLimits(50_000, 5_000, 20_000)},
				{Name: "full", Limits: devLimits(1_000_000, 200_000, 500_000)},
				{Name: "institutional"},
			},
		},
		Validators: []Validator{{
			Name:      "dev-validator",
			PublicKey: ethcrypto.CompressPubkey(&vkey.ECDSA().PublicKey),
		}},
	}
	for i := uint32(0); i < DevGovernanceMembers; i++ {
		g.Governance.Members = append(g.Governance.Members, addr(DevGovernanceIndex+i))
	}
	g.Governance.Threshold = 2
	g.Governance.ActivationDelay = 3
	top := uint8(DevTierInstitutional)
	for i := uint32(0); i < DevAccounts; i++ {
		g.Alloc = append(g.Alloc, Allocation{Address: addr(i), Tier: top, Balances: map[string]Amount{
			"CNY": {new(big.Int).Set(DevBalance)},
			"HKD": {new(big.Int).Set(DevHKDBalance)},
		}})
	}
	// Role accounts send transactions, so they are verified too; they hold nothing.
	for _, i := range []uint32{DevBankAIndex, DevBankBIndex, DevComplianceIndex, DevGovernanceIndex, DevGovernanceIndex + 1, DevGovernanceIndex + 2} {
		g.Alloc = append(g.Alloc, Allocation{Address: addr(i), Tier: top})
	}
	return g, nil
}

// Indent returns the human-readable form of g written to genesis files.
func (g *Genesis) Indent() []byte {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("encode genesis: %v", err))
	}
	return append(b, '\n')
}
