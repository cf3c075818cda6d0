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
}

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
		return Account{Tier: v[0], Frozen: v[1] == 1}, nil
	}
	return Account{}, fmt.Errorf("state: account record of %s is %d bytes", a, len(v))
}

// SetAccount writes a's compliance record; the zero record deletes the key.
func (o *Overlay) SetAccount(a common.Address, acc Account) {
	var v []byte
	if acc != (Account{}) {
		v = []byte{acc.Tier, 0}
		if acc.Frozen {
			v[1] = 1
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

// Withdrawal statuses.
const (
	WithdrawalPending  uint8 = 1
	WithdrawalSettled  uint8 = 2
	WithdrawalRefunded uint8 = 3
)

// Withdrawal is a holder's request to take money off the chain; its amount
// sits in escrow until the issuing bank settles (burns) or refunds it.
type Withdrawal struct {
	Asset     uint32
	Holder    common.Address
	Amount    *big.Int
	PayoutRef common.Hash
	Status    uint8
}

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

func (o *Overlay) useBankRef(ref common.Hash, asset uint32, number uint64) {
	o.Set(key(prefixBankRef, ref[:]), append(u32(asset), u64(number)...))
}

// Payment is what one payer paid a merchant under one reference, and what
// the merchant has refunded of it.
type Payment struct {
	Paid, Refunded *big.Int
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
