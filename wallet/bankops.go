package wallet

import (
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
)

// The bank edge (docs/operations.md, DESIGN.md decision 11): what a bank's
// bridge signs, and the views it reads. A bridge claims a withdrawal with
// its payment order's id before it sends that order, and sends it only if
// the chain recorded that claim; only the claiming bank settles, refunds or
// returns it.

// Withdrawal statuses, as withdrawal(id) returns them.
const (
	WithdrawalUnknown  uint8 = 0 // no withdrawal of this asset has the id
	WithdrawalPending  uint8 = 1
	WithdrawalSettled  uint8 = 2
	WithdrawalRefunded uint8 = 3
	WithdrawalReturned uint8 = 4 // settled, then returned
)

// noCap is what bankIssuance reports, and proposeSetIssuanceCap takes, for
// no cap: 2^256 − 1.
var noCap = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// MintOp credits a fiat deposit: mint(to, amount, bankRef), once per bankRef.
func MintOp(asset uint32, to common.Address, amount *big.Int, bankRef common.Hash) (Op, error) {
	return AssetOp(asset, "mint", to, amount, [32]byte(bankRef))
}

// ClaimWithdrawalOp records that the caller's bank pays withdrawal id with
// payment order orderID (e.g. a hash of the order's UETR). It succeeds
// again, changing nothing, for the same bank and order; it fails once
// another bank, or another order of the same bank, has claimed it.
func ClaimWithdrawalOp(asset uint32, id uint64, orderID common.Hash) (Op, error) {
	return AssetOp(asset, "claimWithdrawal", new(big.Int).SetUint64(id), [32]byte(orderID))
}

// SettleWithdrawalOp burns a claimed withdrawal the bank has paid (final
// status only: ACSC, or a booked debit).
func SettleWithdrawalOp(asset uint32, id uint64) (Op, error) {
	return AssetOp(asset, "settleWithdrawal", new(big.Int).SetUint64(id))
}

// RefundWithdrawalOp gives a pending withdrawal back to its holder: by the
// bank that claimed it, or by any issuing bank while it is unclaimed
// (cancelling a withdrawal no bank can pay).
func RefundWithdrawalOp(asset uint32, id uint64, reason string) (Op, error) {
	return AssetOp(asset, "refundWithdrawal", new(big.Int).SetUint64(id), reason)
}

// ReturnWithdrawalOp gives a settled withdrawal back to its holder when the
// beneficiary's bank returned the payment (pacs.004, or a credit with
// return information), once; by the bank that claimed it.
func ReturnWithdrawalOp(asset uint32, id uint64, reason string) (Op, error) {
	return AssetOp(asset, "returnWithdrawal", new(big.Int).SetUint64(id), reason)
}

// ReverseMintOp burns what bankRef minted from its holder when the bank
// reversed the credit, once; by the bank that minted it. It fails while the
// holder holds less than the minted amount: the bank's operator takes over.
func ReverseMintOp(asset uint32, bankRef common.Hash, reason string) (Op, error) {
	return AssetOp(asset, "reverseMint", [32]byte(bankRef), reason)
}

// ProposeSetIssuanceCapOp proposes capping bank's outstanding issuance of
// asset at limit (base units); a nil limit proposes removing the cap.
func ProposeSetIssuanceCapOp(asset uint32, bank common.Address, limit *big.Int) (Op, error) {
	if limit == nil {
		limit = noCap
	}
	if limit.Sign() < 0 {
		return Op{}, errors.New("encode proposeSetIssuanceCap: the cap must not be negative")
	}
	return GovernanceOp("proposeSetIssuanceCap", chain.AssetAddress(asset), bank, limit)
}

// WithdrawalInfo is withdrawal(id): Status WithdrawalUnknown when the id is
// not a withdrawal of the asset. Bank and OrderID are the claim, zero while
// unclaimed.
type WithdrawalInfo struct {
	Holder    common.Address
	Amount    *big.Int
	PayoutRef common.Hash
	Status    uint8
	Bank      common.Address
	OrderID   common.Hash
}

// Claimed reports whether a bank has claimed the withdrawal.
func (w *WithdrawalInfo) Claimed() bool { return w.Bank != (common.Address{}) }

// Withdrawal reads withdrawal id of asset, with its claim.
func (c *Client) Withdrawal(ctx context.Context, asset uint32, id uint64) (*WithdrawalInfo, error) {
	vals, err := c.viewAsset(ctx, asset, "withdrawal", 6, new(big.Int).SetUint64(id))
	if err != nil {
		return nil, err
	}
	w := &WithdrawalInfo{}
	var ok [6]bool
	w.Holder, ok[0] = vals[0].(common.Address)
	w.Amount, ok[1] = vals[1].(*big.Int)
	ref, ok2 := vals[2].([32]byte)
	w.Status, ok[3] = vals[3].(uint8)
	w.Bank, ok[4] = vals[4].(common.Address)
	order, ok5 := vals[5].([32]byte)
	ok[2], ok[5] = ok2, ok5
	if ok != [6]bool{true, true, true, true, true, true} {
		return nil, fmt.Errorf("decode withdrawal(%d): unexpected types %T", id, vals)
	}
	w.PayoutRef, w.OrderID = ref, order
	return w, nil
}

// MintInfo is what a bank reference minted (mintRecord): Amount is zero
// when it has not minted (or minted before mints recorded their detail).
type MintInfo struct {
	Bank, Holder common.Address
	Amount       *big.Int
	Height       uint64
	Reversed     bool
}

// MintRecord reads what bankRef minted in asset's facade.
func (c *Client) MintRecord(ctx context.Context, asset uint32, bankRef common.Hash) (*MintInfo, error) {
	vals, err := c.viewAsset(ctx, asset, "mintRecord", 5, [32]byte(bankRef))
	if err != nil {
		return nil, err
	}
	m := &MintInfo{}
	var ok [5]bool
	m.Bank, ok[0] = vals[0].(common.Address)
	m.Holder, ok[1] = vals[1].(common.Address)
	m.Amount, ok[2] = vals[2].(*big.Int)
	m.Height, ok[3] = vals[3].(uint64)
	m.Reversed, ok[4] = vals[4].(bool)
	if ok != [5]bool{true, true, true, true, true} {
		return nil, fmt.Errorf("decode mintRecord: unexpected types %T", vals)
	}
	return m, nil
}

// Issuance is a bank's issuance of an asset (bankIssuance): Minted counts
// its mints and returns, Burned its settlements and reversals;
// Outstanding = Minted − Burned (negative for a bank that paid out more
// than it took in). Cap is nil when the bank has no cap.
type Issuance struct {
	Minted, Burned, Outstanding, Cap *big.Int
}

// BankIssuance reads bank's issuance of asset and its cap.
func (c *Client) BankIssuance(ctx context.Context, asset uint32, bank common.Address) (*Issuance, error) {
	vals, err := c.viewAsset(ctx, asset, "bankIssuance", 4, bank)
	if err != nil {
		return nil, err
	}
	is := &Issuance{}
	var ok [4]bool
	is.Minted, ok[0] = vals[0].(*big.Int)
	is.Burned, ok[1] = vals[1].(*big.Int)
	is.Outstanding, ok[2] = vals[2].(*big.Int)
	is.Cap, ok[3] = vals[3].(*big.Int)
	if ok != [4]bool{true, true, true, true} {
		return nil, fmt.Errorf("decode bankIssuance: unexpected types %T", vals)
	}
	if is.Cap.Cmp(noCap) == 0 {
		is.Cap = nil
	}
	return is, nil
}

// MinorUnits reads how many decimal places asset's currency pays in (ISO
// 4217): a withdrawal must be a whole number of them.
func (c *Client) MinorUnits(ctx context.Context, asset uint32) (uint8, error) {
	vals, err := c.viewAsset(ctx, asset, "minorUnits", 1)
	if err != nil {
		return 0, err
	}
	m, ok := vals[0].(uint8)
	if !ok {
		return 0, fmt.Errorf("decode minorUnits: %T", vals[0])
	}
	return m, nil
}

// viewAsset calls a view of asset's facade and checks its output count.
func (c *Client) viewAsset(ctx context.Context, asset uint32, method string, outputs int, args ...any) ([]any, error) {
	op, err := AssetOp(asset, method, args...)
	if err != nil {
		return nil, err
	}
	vals, err := c.View(ctx, op)
	if err != nil {
		return nil, err
	}
	if len(vals) != outputs {
		return nil, fmt.Errorf("%s returned %d values, want %d", method, len(vals), outputs)
	}
	return vals, nil
}
