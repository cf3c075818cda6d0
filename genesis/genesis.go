package genesis

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/crypto"
)

// Genesis is the content of a genesis file.
type Genesis struct {
	// ChainID is the EIP-155 chain id every transaction must carry.
	ChainID uint64 `json:"chainId"`
	// TimestampMs is block 0's time in milliseconds since the Unix epoch.
	TimestampMs uint64 `json:"timestampMs"`
	// NativeAsset is the asset moved by a transaction's value (18 decimals).
	NativeAsset Asset `json:"nativeAsset"`
	// Validators may propose blocks; their keys are the nodes' keys.
	Validators []Validator `json:"validators"`
	// Alloc is the initial native balance of each account, in base units.
	// Genesis allocations count as minted at height 0.
	Alloc []Allocation `json:"alloc"`
}

// Asset describes an asset.
type Asset struct {
	Symbol   string `json:"symbol"`
	Name     string `json:"name"`
	Decimals uint8  `json:"decimals"`
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

// Allocation is an initial balance.
type Allocation struct {
	Address common.Address `json:"address"`
	// Balance is a decimal string of base units (18 decimals for the native asset).
	Balance Amount `json:"balance"`
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

// MaxValidators bounds the validator set a genesis file may name.
const MaxValidators = 64

// ErrInvalid is wrapped by every error from Parse and Validate.
var ErrInvalid = errors.New("invalid genesis")

// Validate checks the genesis for consistency; errors name the field.
func (g *Genesis) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if g.ChainID == 0 {
		return bad("chainId must be > 0")
	}
	if g.NativeAsset.Symbol == "" || len(g.NativeAsset.Symbol) > 11 {
		return bad("nativeAsset.symbol must be 1..11 characters")
	}
	if g.NativeAsset.Decimals != 18 {
		return bad("nativeAsset.decimals must be 18 (wallets show a native currency only with 18)")
	}
	if len(g.Validators) == 0 || len(g.Validators) > MaxValidators {
		return bad("validators: need 1..%d, have %d", MaxValidators, len(g.Validators))
	}
	seen := map[common.Address]bool{}
	for i, v := range g.Validators {
		if len(v.PublicKey) != 33 {
			return bad("validators[%d].publicKey must be a 33-byte compressed key", i)
		}
		addr, err := v.Address()
		if err != nil {
			return bad("validators[%d].publicKey: %v", i, err)
		}
		if seen[addr] {
			return bad("validators[%d]: duplicate key", i)
		}
		seen[addr] = true
	}
	allocs := map[common.Address]bool{}
	for i, a := range g.Alloc {
		if a.Balance.Int == nil {
			return bad("alloc[%d].balance missing", i)
		}
		if a.Balance.BitLen() > 255 {
			return bad("alloc[%d].balance too large", i)
		}
		if allocs[a.Address] {
			return bad("alloc[%d]: duplicate address %s", i, a.Address)
		}
		allocs[a.Address] = true
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
// the first DevAccounts accounts of crypto.TestMnemonic funded with
// 10^30 base units each, and one validator whose key is DevValidatorIndex of
// the same mnemonic.
func Dev() *Genesis {
	g, err := Parse(devJSON)
	if err != nil {
		panic(fmt.Sprintf("embedded dev genesis: %v", err))
	}
	return g
}

// DevJSON returns the embedded dev genesis file.
func DevJSON() []byte { return bytes.Clone(devJSON) }

// Dev chain constants.
const (
	DevChainID = 1337
	// DevAccounts is how many accounts of the test mnemonic the dev genesis funds.
	DevAccounts = 20
	// DevValidatorIndex is the BIP44 index (m/44'/60'/0'/0/i) of the dev node key.
	DevValidatorIndex = 1000
)

// DevBalance is each dev account's balance: 10^30 base units (10^12 CNY).
var DevBalance = new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)

// DevKey returns the key of dev account i (m/44'/60'/0'/0/i of the test mnemonic).
func DevKey(i uint32) (*crypto.PrivateKey, error) {
	return crypto.KeyFromMnemonic(crypto.TestMnemonic, "", i)
}

// BuildDev computes the dev genesis from the test mnemonic; dev.json must equal
// its encoding (a test checks it), so the embedded file cannot drift.
func BuildDev() (*Genesis, error) {
	vkey, err := DevKey(DevValidatorIndex)
	if err != nil {
		return nil, err
	}
	g := &Genesis{
		ChainID:     DevChainID,
		TimestampMs: 1767225600000, // 2026-01-01T00:00:00Z
		NativeAsset: Asset{Symbol: "CNY", Name: "Chinese Yuan", Decimals: 18},
		Validators: []Validator{{
			Name:      "dev-validator",
			PublicKey: ethcrypto.CompressPubkey(&vkey.ECDSA().PublicKey),
		}},
	}
	for i := uint32(0); i < DevAccounts; i++ {
		k, err := DevKey(i)
		if err != nil {
			return nil, err
		}
		g.Alloc = append(g.Alloc, Allocation{Address: k.Address(), Balance: Amount{new(big.Int).Set(DevBalance)}})
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
