package chain

import (
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"

	tally "github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/crypto"
)

// System addresses. There is no EVM (DESIGN.md decision 2): a transaction to
// one of these addresses calls a system operation with ABI-encoded calldata.
//
//	0x…1000 + id   the ERC-20 facade of asset id (id 0 is the native asset)
//	0x…0c01        compliance (KYC tiers, freezes)
//	0x…0c02        governance (proposals and votes on the rules)
//	0x…0c03        exchange (cross-currency offers)
//	0x…0c04        confirmations (second confirmation of large payments)
//	0x…0c05        disputes (a payer's complaint about a payment)
var (
	ComplianceAddress = common.HexToAddress("0x0000000000000000000000000000000000000c01")
	GovernanceAddress = common.HexToAddress("0x0000000000000000000000000000000000000c02")
	ExchangeAddress   = common.HexToAddress("0x0000000000000000000000000000000000000c03")
	// ConfirmationsAddress holds the confirmation keys, thresholds and
	// pending payments (DESIGN.md decision 13, docs/payments.md).
	ConfirmationsAddress = common.HexToAddress("0x0000000000000000000000000000000000000c04")
	// DisputesAddress holds the disputes on payments (docs/payments.md).
	DisputesAddress = common.HexToAddress("0x0000000000000000000000000000000000000c05")
)

// MulticallAddress is Multicall3's canonical address (mds1/multicall),
// where viem, wagmi and the multicall helpers of ethers look for it. Tally
// serves Multicall3's functions to eth_call and eth_estimateGas only (the
// rpc package), over the system contracts' views: it is not a system
// address, execution never runs it (a block's transaction to it would be a
// plain transfer, as before it existed), and admission refuses every
// transaction to it.
var MulticallAddress = common.HexToAddress("0xcA11bde05977b3631167028862bE2a173976CA11")

// assetBase is the facade address of asset 0.
const assetBase = 0x1000

// MaxAssetID is the highest asset id with a facade address.
const MaxAssetID = 0xefff

// AssetAddress returns the ERC-20 facade address of asset id.
func AssetAddress(id uint32) common.Address {
	if id > MaxAssetID {
		panic(fmt.Sprintf("asset id %d has no facade address", id))
	}
	var a common.Address
	v := assetBase + id
	a[18], a[19] = byte(v>>8), byte(v)
	return a
}

// AssetID returns the asset id whose facade is at a.
func AssetID(a common.Address) (uint32, bool) {
	for _, b := range a[:18] {
		if b != 0 {
			return 0, false
		}
	}
	v := uint32(a[18])<<8 | uint32(a[19])
	if v < assetBase {
		return 0, false
	}
	return v - assetBase, true
}

// IsSystemAddress reports whether a is a system contract address (an asset
// facade, compliance, governance, exchange, confirmations or disputes).
// Whether an asset id exists is the state's business.
func IsSystemAddress(a common.Address) bool {
	_, ok := AssetID(a)
	return ok || a == ComplianceAddress || a == GovernanceAddress || a == ExchangeAddress ||
		a == ConfirmationsAddress || a == DisputesAddress
}

// SystemCode is what eth_getCode returns at a system address: a single
// INVALID opcode, so client libraries see a contract while nothing could
// ever run it.
var SystemCode = []byte{0xfe}

// GasPerSystemCall is the gas a system operation uses, whatever it does;
// gas is not charged (there are no fees), the value keeps clients working.
const GasPerSystemCall = 60_000

// GasOf is the gas a transaction to to uses, and so the least it must
// carry: GasPerSystemCall at a system address, GasPerTransfer elsewhere.
func GasOf(to common.Address) uint64 {
	if IsSystemAddress(to) {
		return GasPerSystemCall
	}
	return GasPerTransfer
}

// MaxCalldata bounds a system call's calldata (the longest is a string
// reason); longer calldata is refused at admission.
const MaxCalldata = 4096

// MaxBatchTransfer bounds the legs of one batchTransfer, so that one
// transaction's work stays small. A cap that calldata cannot reach would
// never be what refuses a batch: 50 legs encode in 164 + 64·50 = 3364
// bytes, within MaxCalldata (61 legs would be the most that fit).
const MaxBatchTransfer = 50

// Contract ABIs, parsed once from the published files under abi/.
var (
	AssetABI      = mustABI("Asset")
	ComplianceABI = mustABI("Compliance")
	GovernanceABI = mustABI("Governance")
	ExchangeABI   = mustABI("Exchange")
	// ConfirmationsABI and DisputesABI are the payment-trust contracts
	// (docs/payments.md).
	ConfirmationsABI = mustABI("Confirmations")
	DisputesABI      = mustABI("Disputes")
	// Multicall3ABI is mds1/multicall's Multicall3 (MulticallAddress).
	Multicall3ABI = mustABI("Multicall3")
)

// ContractABI returns the ABI of the system contract at a: Asset for any
// facade address (whether the asset exists is the state's business).
func ContractABI(a common.Address) (*abi.ABI, bool) {
	switch a {
	case ComplianceAddress:
		return &ComplianceABI, true
	case GovernanceAddress:
		return &GovernanceABI, true
	case ExchangeAddress:
		return &ExchangeABI, true
	case ConfirmationsAddress:
		return &ConfirmationsABI, true
	case DisputesAddress:
		return &DisputesABI, true
	}
	if _, ok := AssetID(a); ok {
		return &AssetABI, true
	}
	return nil, false
}

// ABIJSON returns the published ABI of a system contract ("Asset",
// "Compliance", "Governance", "Exchange", "Confirmations", "Disputes",
// "Multicall3").
func ABIJSON(contract string) ([]byte, error) {
	return tally.ABIFiles.ReadFile("abi/" + contract + ".json")
}

func mustABI(name string) abi.ABI {
	b, err := ABIJSON(name)
	if err != nil {
		panic(fmt.Sprintf("abi %s: %v", name, err))
	}
	a, err := abi.JSON(strings.NewReader(string(b)))
	if err != nil {
		panic(fmt.Sprintf("abi %s: %v", name, err)) // a test loads every file
	}
	return a
}

// errorSelector is the selector of Solidity's Error(string).
var errorSelector = crypto.Keccak256([]byte("Error(string)"))

// EncodeRevert returns the revert data of a failure reason: the ABI
// encoding of Error(reason), as Solidity's require produces it.
func EncodeRevert(reason string) []byte {
	t, _ := abi.NewType("string", "", nil)
	enc, err := abi.Arguments{{Type: t}}.Pack(reason)
	if err != nil {
		panic(fmt.Sprintf("pack revert reason: %v", err)) // a string always packs
	}
	return append(append([]byte{}, errorSelector[:4]...), enc...)
}
