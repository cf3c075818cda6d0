package state

import (
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"
)

// Account is an account's compliance record.
type Account struct {
	Tier   uint8
	Frozen bool
	// Suspended: the account has a suspension record (risk.go), active or
	// expired; Listed: it is on the watch list. The flags spare the reads
	// of those records for every account that has none.
	Suspended bool
	Listed    bool
	// Confirm: the account has confirmation settings (confirm.go), so its
	// outgoing payments are checked against its thresholds.
	Confirm bool
}

// Flags of the account record's second byte.
const (
	accountFrozen    = 1
	accountSuspended = 2
	accountListed    = 4
	accountConfirm   = 8
)

// Account returns a's compliance record (tier 0, not frozen when absent).
func (o *Overlay) Account(a common.Address) (Account, error) {
	v, err := o.Get(key(prefixAccount, a[:]))
	if err != nil {
		return Account{}, err
	}
	switch len(v) {
	case 0:
		return Account{}, nil
	case 2:
		return Account{Tier: v[0], Frozen: v[1]&accountFrozen != 0, Suspended: v[1]&accountSuspended != 0, Listed: v[1]&accountListed != 0, Confirm: v[1]&accountConfirm != 0}, nil
	}
	return Account{}, fmt.Errorf("state: account record of %s is %d bytes", a, len(v))
}

// SetAccount writes a's compliance record; the zero record deletes the key.
func (o *Overlay) SetAccount(a common.Address, acc Account) {
	var v []byte
	if acc != (Account{}) {
		v = []byte{acc.Tier, 0}
		for _, f := range []struct {
			on  bool
			bit byte
		}{{acc.Frozen, accountFrozen}, {acc.Suspended, accountSuspended}, {acc.Listed, accountListed}, {acc.Confirm, accountConfirm}} {
			if f.on {
				v[1] |= f.bit
			}
		}
	}
	o.Set(key(prefixAccount, a[:]), v)
}

// Outflow returns what a has sent of asset on UTC day (of block time).
func (o *Overlay) Outflow(asset uint32, a common.Address, day uint64) (*big.Int, error) {
	v, err := o.Get(key(prefixOutflow, u32(asset), a[:]))
	if err != nil {
		return nil, err
	}
	if len(v) < 8 || binary.BigEndian.Uint64(v) != day {
		return new(big.Int), nil
	}
	return new(big.Int).SetBytes(v[8:]), nil
}

// SetOutflow records what a has sent of asset on day.
func (o *Overlay) SetOutflow(asset uint32, a common.Address, day uint64, amount *big.Int) {
	o.Set(key(prefixOutflow, u32(asset), a[:]), append(u64(day), amount.Bytes()...))
}

// Supply is an asset's issuance: Minted − Burned = sum of balances + Escrow
// (DESIGN.md decision 9).
type Supply struct {
	Minted, Burned, Escrow *big.Int
}

// Circulating is the supply held in balances: Minted − Burned − Escrow.
func (s Supply) Circulating() *big.Int {
	c := new(big.Int).Sub(s.Minted, s.Burned)
	return c.Sub(c, s.Escrow)
}

// Supply returns asset's issuance record.
func (o *Overlay) Supply(asset uint32) (Supply, error) {
	v, err := o.Get(key(prefixSupply, u32(asset)))
	if err != nil {
		return Supply{Minted: new(big.Int), Burned: new(big.Int), Escrow: new(big.Int)}, err
	}
	s, err := decodeSupply(v)
	if err != nil {
		return s, fmt.Errorf("state: supply of asset %d: %w", asset, err)
	}
	return s, nil
}

// SetSupply writes asset's issuance record.
func (o *Overlay) SetSupply(asset uint32, s Supply) {
	v, err := rlp.EncodeToBytes(&s)
	if err != nil {
		panic(fmt.Sprintf("encode supply: %v", err)) // three non-negative integers always encode
	}
	o.Set(key(prefixSupply, u32(asset)), v)
}

// Withdrawal statuses. A withdrawal is pending until the bank that claimed
// it settles it, or a bank refunds it; a settled withdrawal may be
// returned, once.
const (
	WithdrawalPending  uint8 = 1
	WithdrawalSettled  uint8 = 2
	WithdrawalRefunded uint8 = 3
	WithdrawalReturned uint8 = 4 // settled, then returned by the beneficiary's bank
)

// Withdrawal is a holder's request to take money off the chain; its amount
// sits in escrow until the issuing bank that claimed it settles (burns) it,
// or it is refunded.
type Withdrawal struct {
	Asset     uint32
	Holder    common.Address
	Amount    *big.Int
	PayoutRef common.Hash
	Status    uint8
	// Bank is the issuing bank that claimed the withdrawal (DESIGN.md
	// decision 11), zero while unclaimed; OrderID is the payment order
	// that bank recorded with its claim. Optional in RLP: an unclaimed
	// withdrawal encodes as before claims existed.
	Bank    common.Address `rlp:"optional"`
	OrderID common.Hash    `rlp:"optional"`
}

// Claimed reports whether a bank has claimed w.
func (w Withdrawal) Claimed() bool { return w.Bank != (common.Address{}) }

// Withdrawal returns withdrawal id; ok is false if there is none.
func (o *Overlay) Withdrawal(id uint64) (w Withdrawal, ok bool, err error) {
	v, err := o.Get(key(prefixWithdraw, u64(id)))
	if err != nil || len(v) == 0 {
		return w, false, err
	}
	if err := rlp.DecodeBytes(v, &w); err != nil {
		return w, false, fmt.Errorf("state: withdrawal %d: %w", id, err)
	}
	return w, true, nil
}

// SetWithdrawal writes withdrawal id.
func (o *Overlay) SetWithdrawal(id uint64, w Withdrawal) {
	v, err := rlp.EncodeToBytes(&w)
	if err != nil {
		panic(fmt.Sprintf("encode withdrawal: %v", err))
	}
	o.Set(key(prefixWithdraw, u64(id)), v)
}

// nextWithdrawalID allocates the next withdrawal id (ids start at 1).
func (o *Overlay) nextWithdrawalID() (uint64, error) {
	v, err := o.Get(keyWithdrawSeq)
	if err != nil {
		return 0, err
	}
	var last uint64
	if len(v) == 8 {
		last = binary.BigEndian.Uint64(v)
	}
	o.Set(keyWithdrawSeq, u64(last+1))
	return last + 1, nil
}

// BankRefUsed reports whether bankRef has minted, ever.
func (o *Overlay) BankRefUsed(ref common.Hash) (bool, error) {
	v, err := o.Get(key(prefixBankRef, ref[:]))
	return len(v) != 0, err
}

// MintRecord is what a bank reference minted: enough to reverse it.
type MintRecord struct {
	Asset  uint32
	Height uint64
	// Bank, Holder and Amount are zero in a record written before mint
	// records held them (12 bytes: asset and height only); such a mint
	// cannot be reversed.
	Bank     common.Address
	Holder   common.Address
	Amount   *big.Int
	Reversed bool
}

// mintDetail is the part of a mint record after asset and height.
type mintDetail struct {
	Bank, Holder common.Address
	Amount       *big.Int
	Reversed     bool
}

// MintRecord returns the mint of bankRef; ok is false if it has not minted.
func (o *Overlay) MintRecord(ref common.Hash) (m MintRecord, ok bool, err error) {
	v, err := o.Get(key(prefixBankRef, ref[:]))
	if err != nil || len(v) == 0 {
		return m, false, err
	}
	if len(v) < 12 {
		return m, false, fmt.Errorf("state: mint record %s is %d bytes", ref, len(v))
	}
	m.Asset, m.Height = binary.BigEndian.Uint32(v), binary.BigEndian.Uint64(v[4:])
	if len(v) == 12 {
		return m, true, nil
	}
	var d mintDetail
	if err := rlp.DecodeBytes(v[12:], &d); err != nil {
		return m, false, fmt.Errorf("state: mint record %s: %w", ref, err)
	}
	m.Bank, m.Holder, m.Amount, m.Reversed = d.Bank, d.Holder, d.Amount, d.Reversed
	return m, true, nil
}

// setMintRecord writes the mint of bankRef: asset ++ height ++ RLP detail.
func (o *Overlay) setMintRecord(ref common.Hash, m MintRecord) {
	d, err := rlp.EncodeToBytes(&mintDetail{Bank: m.Bank, Holder: m.Holder, Amount: m.Amount, Reversed: m.Reversed})
	if err != nil {
		panic(fmt.Sprintf("encode mint record: %v", err))
	}
	o.Set(key(prefixBankRef, ref[:]), append(append(u32(m.Asset), u64(m.Height)...), d...))
}

// Issuance is what one bank has put on the chain of one asset (its mints
// and the returns it credited) and taken off it (the withdrawals it
// settled and the mints it reversed). Minted − Burned, its outstanding
// issuance, moves as the bank's omnibus account does, and may be negative
// (a bank that paid out more than it took in); the issuance cap bounds it.
type Issuance struct {
	Minted, Burned *big.Int
}

// Outstanding is Minted − Burned.
func (i Issuance) Outstanding() *big.Int { return new(big.Int).Sub(i.Minted, i.Burned) }

// Issuance returns bank's issuance record of asset.
func (o *Overlay) Issuance(asset uint32, bank common.Address) (Issuance, error) {
	is := Issuance{Minted: new(big.Int), Burned: new(big.Int)}
	v, err := o.Get(key(prefixIssuance, u32(asset), bank[:]))
	if err != nil || len(v) == 0 {
		return is, err
	}
	if err := rlp.DecodeBytes(v, &is); err != nil {
		return is, fmt.Errorf("state: issuance of %s in asset %d: %w", bank, asset, err)
	}
	return is, nil
}

// setIssuance writes bank's issuance record of asset; zero deletes it.
func (o *Overlay) setIssuance(asset uint32, bank common.Address, is Issuance) {
	var v []byte
	if is.Minted.Sign() != 0 || is.Burned.Sign() != 0 {
		var err error
		if v, err = rlp.EncodeToBytes(&is); err != nil {
			panic(fmt.Sprintf("encode issuance: %v", err))
		}
	}
	o.Set(key(prefixIssuance, u32(asset), bank[:]), v)
}

// addIssuance adds minted and burned to bank's issuance record of asset.
func (o *Overlay) addIssuance(asset uint32, bank common.Address, minted, burned *big.Int) error {
	is, err := o.Issuance(asset, bank)
	if err != nil {
		return err
	}
	is.Minted.Add(is.Minted, minted)
	is.Burned.Add(is.Burned, burned)
	o.setIssuance(asset, bank, is)
	return nil
}

// successor returns the key that replaced bank's as an issuer of asset
// (governance proposeRotateBankKey), or the zero address.
func (o *Overlay) successor(asset uint32, bank common.Address) (common.Address, error) {
	v, err := o.Get(key(prefixSuccessor, u32(asset), bank[:]))
	return common.BytesToAddress(v), err
}

// Payment is what one payer paid a merchant under one reference, and what
// the merchant has refunded of it.
type Payment struct {
	Paid, Refunded *big.Int
	// PaidMs is the block time of the last payment under the reference,
	// recorded only for an asset that takes disputes (its dispute window
	// runs from it); optional in RLP, so other payments encode as before.
	PaidMs uint64 `rlp:"optional"`
}

func paymentKey(asset uint32, merchant common.Address, ref common.Hash, payer common.Address) []byte {
	return key(prefixPayment, u32(asset), merchant[:], ref[:], payer[:])
}

// Payment returns what payer paid merchant under ref in asset.
func (o *Overlay) Payment(asset uint32, merchant common.Address, ref common.Hash, payer common.Address) (Payment, error) {
	p := Payment{Paid: new(big.Int), Refunded: new(big.Int)}
	v, err := o.Get(paymentKey(asset, merchant, ref, payer))
	if err != nil || len(v) == 0 {
		return p, err
	}
	if err := rlp.DecodeBytes(v, &p); err != nil {
		return p, fmt.Errorf("state: payment %s: %w", ref, err)
	}
	return p, nil
}

// SetPayment writes a payment record.
func (o *Overlay) SetPayment(asset uint32, merchant common.Address, ref common.Hash, payer common.Address, p Payment) {
	v, err := rlp.EncodeToBytes(&p)
	if err != nil {
		panic(fmt.Sprintf("encode payment: %v", err))
	}
	o.Set(paymentKey(asset, merchant, ref, payer), v)
}

// Allowance returns how much spender may move of owner's asset.
func (o *Overlay) Allowance(asset uint32, owner, spender common.Address) (*big.Int, error) {
	v, err := o.Get(key(prefixAllowance, u32(asset), owner[:], spender[:]))
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(v), nil
}

// SetAllowance writes an allowance; zero deletes it.
func (o *Overlay) SetAllowance(asset uint32, owner, spender common.Address, v *big.Int) {
	o.Set(key(prefixAllowance, u32(asset), owner[:], spender[:]), v.Bytes())
}
