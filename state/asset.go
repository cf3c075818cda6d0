package state

import (
	"math/big"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/chain"
)

// maxUint256 is what an unlimited allowance reports.
var maxUint256 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// asset runs operation name of asset id's facade (abi/Asset.json) with
// decoded args and returns its outputs.
func (x *exec) asset(id uint32, name string, args []any) ([]any, error) {
	facade := chain.AssetAddress(id)
	info := x.rules.Assets[id]
	addr := func(i int) common.Address { return args[i].(common.Address) }
	num := func(i int) *big.Int { return args[i].(*big.Int) }
	hash := func(i int) common.Hash { return common.Hash(args[i].([32]byte)) }
	ok := []any{true}

	switch name {
	case "name":
		return []any{info.Name}, nil
	case "symbol":
		return []any{info.Symbol}, nil
	case "decimals":
		return []any{info.Decimals}, nil
	case "totalSupply":
		s, err := x.o.Supply(id)
		if err != nil {
			return nil, err
		}
		return []any{new(big.Int).Sub(s.Minted, s.Burned)}, nil
	case "balanceOf":
		if addr(0) == facade { // the facade holds the escrow, as its Transfer logs say
			s, err := x.o.Supply(id)
			if err != nil {
				return nil, err
			}
			return []any{s.Escrow}, nil
		}
		bal, err := x.o.Balance(id, addr(0))
		return []any{bal}, err
	case "allowance":
		v, err := x.o.Allowance(id, addr(0), addr(1))
		return []any{v}, err
	case "isIssuer":
		return []any{x.rules.IsBank(id, addr(0))}, nil
	case "bankRefUsed":
		used, err := x.o.BankRefUsed(hash(0))
		return []any{used}, err
	case "withdrawal":
		w, found, err := x.withdrawalOf(id, num(0))
		if err != nil || !found {
			return []any{common.Address{}, new(big.Int), [32]byte{}, uint8(0), common.Address{}, [32]byte{}}, err
		}
		return []any{w.Holder, w.Amount, [32]byte(w.PayoutRef), w.Status, w.Bank, [32]byte(w.OrderID)}, nil
	case "paidUnderReference":
		p, err := x.o.Payment(id, addr(0), hash(1), addr(2))
		return []any{p.Paid, p.Refunded}, err
	case "supply":
		s, err := x.o.Supply(id)
		if err != nil {
			return nil, err
		}
		return []any{s.Minted, s.Burned, s.Escrow, s.Circulating()}, nil
	case "minorUnits":
		return []any{info.Minor()}, nil
	case "mintRecord":
		m, found, err := x.o.MintRecord(hash(0))
		if err != nil || !found || m.Amount == nil {
			return []any{common.Address{}, common.Address{}, new(big.Int), uint64(0), false}, err
		}
		return []any{m.Bank, m.Holder, m.Amount, m.Height, m.Reversed}, nil
	case "bankIssuance":
		is, err := x.o.Issuance(id, addr(0))
		if err != nil {
			return nil, err
		}
		limit := info.CapOf(addr(0))
		if limit == nil {
			limit = maxUint256
		}
		return []any{is.Minted, is.Burned, is.Outstanding(), limit}, nil

	case "transfer":
		if held, err := x.hold(heldOp{kind: HeldKindTransfer, asset: id, to: addr(0), amount: num(1)}); held || err != nil {
			return ok, err
		}
		if err := x.move(id, x.from, addr(0), num(1), false); err != nil {
			return nil, err
		}
		x.transferLog(id, x.from, addr(0), num(1))
		return ok, nil
	case "transferWithReference":
		if held, err := x.hold(heldOp{kind: HeldKindPayment, asset: id, to: addr(0), amount: num(1), ref: hash(2)}); held || err != nil {
			return ok, err
		}
		return ok, x.pay(id, addr(0), num(1), hash(2))
	case "batchTransfer":
		return ok, x.batchTransfer(id, args[0].([]common.Address), args[1].([]*big.Int), hash(2))
	case "approve":
		return ok, x.approve(id, addr(0), num(1))
	case "transferFrom":
		return ok, x.transferFrom(id, addr(0), addr(1), num(2))
	case "refund":
		return ok, x.refund(id, hash(0), addr(1), num(2))
	case "mint":
		return ok, x.mint(id, addr(0), num(1), hash(2))
	case "requestWithdrawal":
		// A held withdrawal has no id until it is confirmed: 0.
		if held, err := x.hold(heldOp{kind: HeldKindWithdrawal, asset: id, amount: num(0), ref: hash(1)}); held || err != nil {
			return []any{new(big.Int)}, err
		}
		wid, err := x.requestWithdrawal(id, num(0), hash(1))
		return []any{new(big.Int).SetUint64(wid)}, err
	case "claimWithdrawal":
		return ok, x.claimWithdrawal(id, num(0), hash(1))
	case "settleWithdrawal":
		return ok, x.closeWithdrawal(id, num(0), WithdrawalSettled, "")
	case "refundWithdrawal":
		return ok, x.closeWithdrawal(id, num(0), WithdrawalRefunded, args[1].(string))
	case "returnWithdrawal":
		return ok, x.returnWithdrawal(id, num(0), args[1].(string))
	case "reverseMint":
		return ok, x.reverseMint(id, hash(0), args[1].(string))
	case "forceTransfer":
		return ok, x.forceTransfer(id, addr(0), addr(1), num(2), args[3].(string))
	}
	return nil, revertf("operation %s is not implemented by asset %s", name, info.Symbol)
}

// pay is transferWithReference: a transfer a merchant can match to an
// order, and later refund up to what was paid under the reference.
func (x *exec) pay(id uint32, to common.Address, amount *big.Int, ref common.Hash) error {
	if err := x.move(id, x.from, to, amount, false); err != nil {
		return err
	}
	p, err := x.o.Payment(id, to, ref, x.from)
	if err != nil {
		return err
	}
	p.Paid.Add(p.Paid, amount)
	x.stampPayment(id, &p)
	x.o.SetPayment(id, to, ref, x.from, p)
	x.transferLog(id, x.from, to, amount)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["PaymentReference"], []common.Hash{ref, addrTopic(x.from), addrTopic(to)}, amount)
	return nil
}

// batchTransfer is a split payment: the caller pays every to[i] amounts[i]
// under ref, all legs or none. Each leg is a payment of its own for the
// per-transfer limit (splitting a bill does not make one large transfer)
// and for the merchants (each can match and refund its leg under ref);
// the daily outflow and the balance are checked against the total, which
// is what leaves the payer. A failing leg's reason names its index.
func (x *exec) batchTransfer(id uint32, to []common.Address, amounts []*big.Int, ref common.Hash) error {
	switch {
	case len(to) == 0:
		return revertf("a batch transfer needs at least one recipient")
	case len(to) != len(amounts):
		return revertf("a batch transfer has %d recipients but %d amounts", len(to), len(amounts))
	case len(to) > chain.MaxBatchTransfer:
		return revertf("a batch transfer of %d legs is over the limit of %d", len(to), chain.MaxBatchTransfer)
	}
	acc, err := x.o.Account(x.from)
	if err != nil {
		return err
	}
	if err := x.checkNotFrozen(x.from, acc); err != nil {
		return err
	}
	if err := x.checkNotListed(x.from, acc); err != nil {
		return err
	}
	if acc.Tier < 1 && !x.senderRulesOff(x.from) {
		return revertf("account %s is not KYC-verified: tier 0 may only receive", x.from)
	}
	l := x.rules.limitsOf(acc.Tier, id)
	if x.senderRulesOff(x.from) {
		l = limits{}
	}
	total := new(big.Int)
	for i, a := range amounts {
		if l.maxTransfer != nil && a.Cmp(l.maxTransfer) > 0 {
			return revertf("amounts[%d]: amount %s is over the per-transfer limit %s of tier %d", i, x.units(id, a), x.units(id, l.maxTransfer), acc.Tier)
		}
		total.Add(total, a)
	}
	if err := x.refuseUnconfirmable("batchTransfer", x.from, id, total); err != nil {
		return err
	}
	c := &charge{asset: id, from: x.from}
	if l.maxDaily != nil {
		outflow, err := x.o.Outflow(id, x.from, x.blk.Day())
		if err != nil {
			return err
		}
		outflow.Add(outflow, total)
		if outflow.Cmp(l.maxDaily) > 0 {
			left := new(big.Int).Sub(l.maxDaily, outflow)
			left.Add(left, total)
			return revertf("batch total %s is over the daily outflow limit %s of tier %d: %s left today (UTC)", x.units(id, total), x.units(id, l.maxDaily), acc.Tier, x.units(id, left))
		}
		c.outflow = outflow
	}
	if !x.senderRulesOff(x.from) {
		// Each leg is a transfer for the velocity counters.
		if c.velocity, err = x.checkVelocity(acc, id, x.from, uint64(len(to)), total); err != nil {
			return err
		}
	}
	bal, err := x.o.Balance(id, x.from)
	if err != nil {
		return err
	}
	if bal.Cmp(total) < 0 {
		return revertf("insufficient balance: %s has %s, needs %s", x.from, x.units(id, bal), x.units(id, total))
	}
	facade := chain.AssetAddress(id)
	for i, a := range amounts {
		// The payer's checks are done for the batch as a whole: each leg
		// moves as a forced transfer, which checks only the recipient.
		if err := x.move(id, x.from, to[i], a, true); err != nil {
			if r, ok := IsRevert(err); ok {
				return revertf("to[%d]: %s", i, r.Reason)
			}
			return err
		}
		p, err := x.o.Payment(id, to[i], ref, x.from)
		if err != nil {
			return err
		}
		p.Paid.Add(p.Paid, a)
		x.stampPayment(id, &p)
		x.o.SetPayment(id, to[i], ref, x.from, p)
		x.transferLog(id, x.from, to[i], a)
		x.log(facade, chain.AssetABI.Events["PaymentReference"], []common.Hash{ref, addrTopic(x.from), addrTopic(to[i])}, a)
	}
	x.commit(c, total)
	return nil
}

// refund returns part of what to paid the caller (the merchant) under ref.
func (x *exec) refund(id uint32, ref common.Hash, to common.Address, amount *big.Int) error {
	if err := positive(amount); err != nil {
		return err
	}
	p, err := x.o.Payment(id, x.from, ref, to)
	if err != nil {
		return err
	}
	left := new(big.Int).Sub(p.Paid, p.Refunded)
	if amount.Cmp(left) > 0 {
		return revertf("refund of %s is more than the %s left to refund to %s under reference %s", amount, left, to, ref)
	}
	if err := x.move(id, x.from, to, amount, false); err != nil {
		return err
	}
	p.Refunded.Add(p.Refunded, amount)
	x.o.SetPayment(id, x.from, ref, to, p)
	x.transferLog(id, x.from, to, amount)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["Refund"], []common.Hash{ref, addrTopic(x.from), addrTopic(to)}, amount)
	return x.refundDispute(id, ref, to, amount)
}

func (x *exec) approve(id uint32, spender common.Address, amount *big.Int) error {
	acc, err := x.o.Account(x.from)
	if err != nil {
		return err
	}
	if err := x.checkNotFrozen(x.from, acc); err != nil {
		return err
	}
	if spender == (common.Address{}) {
		return revertf("approve to the zero address")
	}
	x.o.SetAllowance(id, x.from, spender, amount)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["Approval"], []common.Hash{addrTopic(x.from), addrTopic(spender)}, amount)
	return nil
}

// transferFrom moves owner's money by the caller's allowance; the owner's
// tier and limits apply, and the caller must not be frozen either.
func (x *exec) transferFrom(id uint32, owner, to common.Address, amount *big.Int) error {
	acc, err := x.o.Account(x.from)
	if err != nil {
		return err
	}
	if err := x.checkNotFrozen(x.from, acc); err != nil {
		return err
	}
	allowed, err := x.o.Allowance(id, owner, x.from)
	if err != nil {
		return err
	}
	if allowed.Cmp(amount) < 0 {
		return revertf("allowance of %s from %s is %s, below %s", x.from, owner, allowed, amount)
	}
	if err := x.refuseUnconfirmable("transferFrom", owner, id, amount); err != nil {
		return err
	}
	if err := x.move(id, owner, to, amount, false); err != nil {
		return err
	}
	x.o.SetAllowance(id, owner, x.from, allowed.Sub(allowed, amount))
	x.transferLog(id, owner, to, amount)
	return nil
}

// mint issues amount to `to` for one fiat deposit, identified by bankRef
// forever (DESIGN.md decision 9).
func (x *exec) mint(id uint32, to common.Address, amount *big.Int, bankRef common.Hash) error {
	if err := x.checkBank(id); err != nil {
		return err
	}
	if err := positive(amount); err != nil {
		return err
	}
	if used, err := x.o.BankRefUsed(bankRef); err != nil || used {
		if err != nil {
			return err
		}
		return revertf("bank reference %s has already minted", bankRef)
	}
	bal, err := x.o.Balance(id, to)
	if err != nil {
		return err
	}
	bal.Add(bal, amount)
	if err := x.checkRecipient(id, to, bal); err != nil {
		return err
	}
	is, err := x.o.Issuance(id, x.from)
	if err != nil {
		return err
	}
	if limit := x.rules.Assets[id].CapOf(x.from); limit != nil {
		after := is.Outstanding()
		if after.Add(after, amount).Cmp(limit) > 0 {
			return revertf("mint of %s would take the outstanding issuance of %s to %s, over its cap %s", amount, x.from, after, limit)
		}
	}
	s, err := x.o.Supply(id)
	if err != nil {
		return err
	}
	s.Minted.Add(s.Minted, amount)
	x.o.SetSupply(id, s)
	x.o.SetBalance(id, to, bal)
	is.Minted.Add(is.Minted, amount)
	x.o.setIssuance(id, x.from, is)
	x.o.setMintRecord(bankRef, MintRecord{Asset: id, Height: x.blk.Number, Bank: x.from, Holder: to, Amount: new(big.Int).Set(amount)})
	x.transferLog(id, common.Address{}, to, amount)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["Minted"], []common.Hash{bankRef, addrTopic(x.from), addrTopic(to)}, amount)
	return nil
}

// checkBank checks that the caller is an issuing bank of asset id and is
// not frozen (a frozen account can neither send nor receive, banks included).
func (x *exec) checkBank(id uint32) error {
	if !x.rules.IsBank(id, x.from) {
		return revertf("%s is not an issuing bank of %s", x.from, x.rules.Assets[id].Symbol)
	}
	acc, err := x.o.Account(x.from)
	if err != nil {
		return err
	}
	if err := x.checkNotFrozen(x.from, acc); err != nil {
		return err
	}
	return nil
}

// requestWithdrawal moves amount from the caller into escrow until an
// issuing bank settles or refunds it.
func (x *exec) requestWithdrawal(id uint32, amount *big.Int, payoutRef common.Hash) (uint64, error) {
	if err := positive(amount); err != nil {
		return 0, err
	}
	if err := x.checkMinorUnits(id, amount); err != nil {
		return 0, err
	}
	c, err := x.checkSender(id, x.from, amount)
	if err != nil {
		return 0, err
	}
	bal, err := x.o.Balance(id, x.from)
	if err != nil {
		return 0, err
	}
	if bal.Cmp(amount) < 0 {
		return 0, revertf("insufficient balance: %s has %s, needs %s", x.from, x.units(id, bal), x.units(id, amount))
	}
	s, err := x.o.Supply(id)
	if err != nil {
		return 0, err
	}
	wid, err := x.o.nextWithdrawalID()
	if err != nil {
		return 0, err
	}
	x.commit(c, amount)
	x.o.SetBalance(id, x.from, bal.Sub(bal, amount))
	s.Escrow.Add(s.Escrow, amount)
	x.o.SetSupply(id, s)
	x.o.SetWithdrawal(wid, Withdrawal{Asset: id, Holder: x.from, Amount: new(big.Int).Set(amount), PayoutRef: payoutRef, Status: WithdrawalPending})
	facade := chain.AssetAddress(id)
	x.transferLog(id, x.from, facade, amount)
	x.log(facade, chain.AssetABI.Events["WithdrawalRequested"], []common.Hash{numTopic(wid), addrTopic(x.from)}, amount, [32]byte(payoutRef))
	return wid, nil
}

// withdrawalOf returns withdrawal wid if it is of asset id.
func (x *exec) withdrawalOf(id uint32, wid *big.Int) (Withdrawal, bool, error) {
	if !wid.IsUint64() {
		return Withdrawal{}, false, nil
	}
	w, found, err := x.o.Withdrawal(wid.Uint64())
	if err != nil || !found || w.Asset != id {
		return Withdrawal{}, false, err
	}
	return w, true, nil
}

// closeWithdrawal settles (burns the escrow) or refunds (returns it to the
// holder) a pending withdrawal: exactly one of the two, once. Only the bank
// that claimed it may settle it, and only once claimed; a claimed
// withdrawal is refunded only by its bank, an unclaimed one by any issuing
// bank (cancelling a withdrawal no bank can pay). A refund returns the
// money even to a holder frozen or over its maximum since.
func (x *exec) closeWithdrawal(id uint32, wid *big.Int, to uint8, reason string) error {
	if err := x.checkBank(id); err != nil {
		return err
	}
	if to == WithdrawalRefunded {
		if err := reasonArg(reason); err != nil {
			return err
		}
	}
	w, err := x.pendingWithdrawal(id, wid)
	if err != nil {
		return err
	}
	switch {
	case w.Claimed():
		if err := x.checkClaimer(id, wid, w); err != nil {
			return err
		}
	case to == WithdrawalSettled:
		return revertf("withdrawal %s is not claimed: the paying bank claims it (claimWithdrawal) before it settles", wid)
	}
	s, err := x.o.Supply(id)
	if err != nil {
		return err
	}
	s.Escrow.Sub(s.Escrow, w.Amount)
	if s.Escrow.Sign() < 0 {
		panic("state: escrow below zero") // invariant: escrow holds every pending withdrawal
	}
	facade := chain.AssetAddress(id)
	topics := []common.Hash{numTopic(wid.Uint64()), addrTopic(x.from), addrTopic(w.Holder)}
	if to == WithdrawalSettled {
		s.Burned.Add(s.Burned, w.Amount)
		if err := x.o.addIssuance(id, x.from, new(big.Int), w.Amount); err != nil {
			return err
		}
		x.transferLog(id, facade, common.Address{}, w.Amount)
		x.log(facade, chain.AssetABI.Events["WithdrawalSettled"], topics, w.Amount)
	} else {
		bal, err := x.o.Balance(id, w.Holder)
		if err != nil {
			return err
		}
		x.o.SetBalance(id, w.Holder, bal.Add(bal, w.Amount))
		x.transferLog(id, facade, w.Holder, w.Amount)
		x.log(facade, chain.AssetABI.Events["WithdrawalRefunded"], topics, w.Amount, reason)
	}
	x.o.SetSupply(id, s)
	w.Status = to
	x.o.SetWithdrawal(wid.Uint64(), w)
	return nil
}

// forceTransfer is the compliance authority moving money without the
// holder's signature (court orders, lost-key recovery): the sender's freeze
// and limits do not apply; the recipient's do.
func (x *exec) forceTransfer(id uint32, from, to common.Address, amount *big.Int, reason string) error {
	if x.from != x.rules.Compliance {
		return revertf("only the compliance authority %s may force a transfer", x.rules.Compliance)
	}
	if err := reasonArg(reason); err != nil {
		return err
	}
	if err := positive(amount); err != nil {
		return err
	}
	if err := x.move(id, from, to, amount, true); err != nil {
		return err
	}
	x.transferLog(id, from, to, amount)
	x.log(chain.AssetAddress(id), chain.AssetABI.Events["ForcedTransfer"], []common.Hash{addrTopic(from), addrTopic(to)}, amount, reason)
	return nil
}
