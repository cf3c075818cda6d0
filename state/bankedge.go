package state

import (
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
)

// The bank edge (DESIGN.md decision 11): a withdrawal is claimed on chain
// by exactly one issuing bank before any payment order leaves a bridge;
// only that bank settles, refunds or returns it. A bank reverses only its
// own mints. Each bank's outstanding issuance is counted (Issuance) and
// capped by governance.

// maxSuccessors bounds how many key rotations sameBank follows.
const maxSuccessors = 64

// checkMinorUnits refuses an amount of asset id that its currency cannot
// pay: not a whole number of minor units (ISO 4217), e.g. 1.234567 CNY
// when CNY has 2 decimal places and the asset 18.
func (x *exec) checkMinorUnits(id uint32, amount *big.Int) error {
	info := x.rules.Assets[id]
	minor := info.Minor()
	if minor >= info.Decimals {
		return nil
	}
	step := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(info.Decimals-minor)), nil)
	if new(big.Int).Mod(amount, step).Sign() != 0 {
		return revertf("amount %s is not a whole number of %s minor units: %s has %d decimal places, so the amount must be a multiple of %s base units",
			amount, info.Symbol, info.Symbol, minor, step)
	}
	return nil
}

// pendingWithdrawal returns withdrawal wid of asset id if it is pending.
func (x *exec) pendingWithdrawal(id uint32, wid *big.Int) (Withdrawal, error) {
	w, found, err := x.withdrawalOf(id, wid)
	if err != nil {
		return w, err
	}
	switch {
	case !found:
		return w, revertf("no %s withdrawal %s", x.rules.Assets[id].Symbol, wid)
	case w.Status == WithdrawalSettled:
		return w, revertf("withdrawal %s is already settled", wid)
	case w.Status == WithdrawalRefunded:
		return w, revertf("withdrawal %s is already refunded", wid)
	case w.Status == WithdrawalReturned:
		return w, revertf("withdrawal %s is already settled and returned", wid)
	}
	return w, nil
}

// sameBank reports whether the caller is recorded, or the key that
// replaced recorded through governance key rotations.
func (x *exec) sameBank(id uint32, recorded common.Address) (bool, error) {
	for range maxSuccessors {
		if recorded == x.from {
			return true, nil
		}
		next, err := x.o.successor(id, recorded)
		if err != nil || next == (common.Address{}) {
			return false, err
		}
		recorded = next
	}
	return false, nil
}

// checkClaimer checks that the caller is the bank that claimed w.
func (x *exec) checkClaimer(id uint32, wid *big.Int, w Withdrawal) error {
	same, err := x.sameBank(id, w.Bank)
	if err != nil {
		return err
	}
	if !same {
		return revertf("withdrawal %s is claimed by %s, not %s", wid, w.Bank, x.from)
	}
	return nil
}

// claimWithdrawal records that the caller's bank pays withdrawal wid with
// payment order orderID. It is the bridge's permission to send that order:
// a second claim fails, whether by another bank or by the same bank with
// another order (two bridge instances sharing the bank's key); the same
// claim again succeeds and changes nothing, so a bridge that crashed after
// claiming can ask again.
func (x *exec) claimWithdrawal(id uint32, wid *big.Int, orderID common.Hash) error {
	if err := x.checkBank(id); err != nil {
		return err
	}
	if orderID == (common.Hash{}) {
		return revertf("orderId must not be zero")
	}
	w, err := x.pendingWithdrawal(id, wid)
	if err != nil {
		return err
	}
	if w.Claimed() {
		same, err := x.sameBank(id, w.Bank)
		switch {
		case err != nil:
			return err
		case !same:
			return revertf("withdrawal %s is already claimed by %s", wid, w.Bank)
		case w.OrderID != orderID:
			return revertf("withdrawal %s is already claimed by %s with order %s, not %s", wid, w.Bank, w.OrderID, orderID)
		}
		return nil // the same claim again: nothing to do
	}
	w.Bank, w.OrderID = x.from, orderID
	x.o.SetWithdrawal(wid.Uint64(), w)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["WithdrawalClaimed"], []common.Hash{numTopic(wid.Uint64()), addrTopic(x.from), orderID})
	return nil
}

// returnWithdrawal gives the holder back a settled withdrawal that the
// beneficiary's bank returned (pacs.004, or a credit with return
// information): the amount is minted back to the holder, once. The
// holder's freeze and maximum balance do not stop it (the money is the
// holder's, as in a refund), nor does the bank's cap (the bank holds the
// returned money).
func (x *exec) returnWithdrawal(id uint32, wid *big.Int, reason string) error {
	if err := x.checkBank(id); err != nil {
		return err
	}
	if err := reasonArg(reason); err != nil {
		return err
	}
	w, found, err := x.withdrawalOf(id, wid)
	if err != nil {
		return err
	}
	switch {
	case !found:
		return revertf("no %s withdrawal %s", x.rules.Assets[id].Symbol, wid)
	case w.Status == WithdrawalPending:
		return revertf("withdrawal %s is not settled: a pending withdrawal is refunded, not returned", wid)
	case w.Status == WithdrawalRefunded:
		return revertf("withdrawal %s was refunded, not settled", wid)
	case w.Status == WithdrawalReturned:
		return revertf("withdrawal %s is already returned", wid)
	}
	if err := x.checkClaimer(id, wid, w); err != nil {
		return err
	}
	bal, err := x.o.Balance(id, w.Holder)
	if err != nil {
		return err
	}
	s, err := x.o.Supply(id)
	if err != nil {
		return err
	}
	if err := x.o.addIssuance(id, x.from, w.Amount, new(big.Int)); err != nil {
		return err
	}
	s.Minted.Add(s.Minted, w.Amount)
	x.o.SetSupply(id, s)
	x.o.SetBalance(id, w.Holder, bal.Add(bal, w.Amount))
	w.Status = WithdrawalReturned
	x.o.SetWithdrawal(wid.Uint64(), w)
	x.transferLog(id, common.Address{}, w.Holder, w.Amount)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["WithdrawalReturned"],
		[]common.Hash{numTopic(wid.Uint64()), addrTopic(x.from), addrTopic(w.Holder)}, w.Amount, reason)
	return nil
}

// reverseMint takes back a mint whose fiat credit the bank reversed: it
// burns the minted amount from the holder, once, if the holder's balance
// allows; otherwise it fails, and the bank's operator must settle it with
// the holder. The holder's freeze does not stop it.
func (x *exec) reverseMint(id uint32, bankRef common.Hash, reason string) error {
	if err := x.checkBank(id); err != nil {
		return err
	}
	if err := reasonArg(reason); err != nil {
		return err
	}
	m, found, err := x.o.MintRecord(bankRef)
	if err != nil {
		return err
	}
	switch {
	case !found:
		return revertf("bank reference %s has not minted", bankRef)
	case m.Asset != id:
		return revertf("bank reference %s minted another asset (id %d)", bankRef, m.Asset)
	case m.Amount == nil:
		return revertf("bank reference %s minted before mints recorded their holder and amount; it cannot be reversed on chain", bankRef)
	case m.Reversed:
		return revertf("the mint of bank reference %s is already reversed", bankRef)
	}
	same, err := x.sameBank(id, m.Bank)
	if err != nil {
		return err
	}
	if !same {
		return revertf("bank reference %s was minted by %s, not %s", bankRef, m.Bank, x.from)
	}
	bal, err := x.o.Balance(id, m.Holder)
	if err != nil {
		return err
	}
	if bal.Cmp(m.Amount) < 0 {
		return revertf("cannot reverse the mint of bank reference %s: %s holds %s, less than the %s minted", bankRef, m.Holder, bal, m.Amount)
	}
	s, err := x.o.Supply(id)
	if err != nil {
		return err
	}
	if err := x.o.addIssuance(id, x.from, new(big.Int), m.Amount); err != nil {
		return err
	}
	s.Burned.Add(s.Burned, m.Amount)
	x.o.SetSupply(id, s)
	x.o.SetBalance(id, m.Holder, bal.Sub(bal, m.Amount))
	m.Reversed = true
	x.o.setMintRecord(bankRef, m)
	x.transferLog(id, m.Holder, common.Address{}, m.Amount)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["MintReversed"],
		[]common.Hash{bankRef, addrTopic(x.from), addrTopic(m.Holder)}, m.Amount, reason)
	return nil
}
