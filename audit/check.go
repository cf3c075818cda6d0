package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// Events the audit follows.
var (
	evMinted   = chain.AssetABI.Events["Minted"]
	evSettled  = chain.AssetABI.Events["WithdrawalSettled"]
	evRefunded = chain.AssetABI.Events["WithdrawalRefunded"]
	evClaimed  = chain.AssetABI.Events["WithdrawalClaimed"]
	evReturned = chain.AssetABI.Events["WithdrawalReturned"]
	evReversed = chain.AssetABI.Events["MintReversed"]
	// reasonEvents are the compliance actions, which must carry a reason.
	reasonEvents = map[common.Hash]abi.Event{}
)

func init() {
	for _, ev := range []abi.Event{evRefunded, evReturned, evReversed, chain.AssetABI.Events["ForcedTransfer"],
		chain.ComplianceABI.Events["KycTierSet"], chain.ComplianceABI.Events["Frozen"], chain.ComplianceABI.Events["Unfrozen"],
		// The risk controls' (state/risk.go): the reason is their last argument too.
		chain.ComplianceABI.Events["Watched"], chain.ComplianceABI.Events["Unwatched"],
		chain.ComplianceABI.Events["SuspensionConfirmed"], chain.ComplianceABI.Events["SuspensionLifted"]} {
		reasonEvents[ev.ID] = ev
	}
}

// block checks one block and replays it. stop is true when nothing after
// it can be checked (it is missing or does not decode).
func (a *auditor) block(it *item) (stop bool, err error) {
	n := it.raw.Number
	if it.raw.Block == nil {
		a.fail(n, -1, CheckLink, "block "+u64s(n), "none", fmt.Sprintf("block %d is missing from the source (its head is above it); nothing after it can be checked", n))
		return true, nil
	}
	if it.decodeErr != nil {
		check := CheckLink
		if errors.Is(it.decodeErr, chain.ErrBlockTooLarge) || errors.Is(it.decodeErr, chain.ErrTooManyCerts) {
			check = CheckLimits
		}
		a.fail(n, -1, check, "block "+u64s(n), "undecodable", fmt.Sprintf("stored block %d: %v; nothing after it can be checked", n, it.decodeErr))
		return true, nil
	}
	b, h := it.b, it.b.Header
	hash := b.Hash()

	// Every rule that needs no execution: the ones the FSM and the
	// builder apply (state.CheckBlock). The history root is the one of
	// the blocks as stored: when histPending, the last block's hash is
	// appended as this header's parent hash says (the link rule compares
	// it with the hash), so one bad hash fails the link once, not every
	// later history root.
	if a.histPending {
		a.hist.Append(h.ParentHash)
	}
	a.histPending = true
	par := state.Parent{Hash: a.prevHash, Root: a.prevRoot, Number: n - 1, TimeMs: a.prevTimeMs, History: a.hist}
	prep := &state.Prepared{Block: b, Senders: it.senders, SenderErrs: it.senderErrs, SealErr: it.sealErr}
	for _, v := range state.CheckBlock(prep, par, auditView{a: a, head: n - 1}, a.chainID) {
		a.fail(n, v.Tx, v.Rule, v.Expected, v.Found, v.Err.Error())
	}
	for _, c := range b.Certs {
		a.rep.Certificates++
		if c.Height >= n {
			continue
		}
		a.setCertified(c.Height)
		if a.rep.LastCertified == nil || c.Height > *a.rep.LastCertified {
			h := c.Height
			a.rep.LastCertified = &h
		}
	}

	// Replay.
	res, err := a.replay.Execute(b, it.senders, it.senderErrs)
	if err != nil {
		return false, fmt.Errorf("replay block %d: %w", n, err)
	}
	a.checkReceipts(n, b, it, res)
	a.checkReasons(n, b, it.raw.Reasons, res.Reasons)
	included := *res.Result
	included.Receipts = slices.DeleteFunc(slices.Clone(res.Receipts), func(r *types.Receipt) bool { return r == nil })
	for _, v := range state.CheckExecution(h, a.prevRoot, &included) {
		a.fail(n, v.Tx, v.Rule, v.Expected, v.Found, "replaying the block on its parent's state: "+v.Err.Error())
	}
	receipts := it.receipts
	if it.rcptErr != nil {
		receipts = res.Receipts // the stored ones do not decode: follow what the replay says
	}
	if err := a.checkEvents(n, receipts); err != nil {
		return false, err
	}
	if err := a.replay.Commit(res.Result); err != nil {
		return false, fmt.Errorf("replay block %d: %w", n, err)
	}

	a.prevHash, a.prevRoot = hash, h.Root
	if timeMs, err := chain.TimeMs(h); err == nil {
		a.prevTimeMs = timeMs
	}
	if err := a.index.addHash(hash); err != nil {
		return false, err
	}
	a.rep.Blocks++
	a.rep.Txs += uint64(len(b.Txs))
	return false, nil
}

// auditView is the chain as audited so far, up to head, as the rules see it.
type auditView struct {
	a    *auditor
	head uint64
}

func (v auditView) HeadNumber() uint64 { return v.head }
func (v auditView) ValidatorsAt(n uint64) ([]common.Address, error) {
	return v.a.replay.ValidatorsAt(n), nil
}
func (v auditView) HashAt(n uint64) (common.Hash, bool, error) {
	return v.a.hashAt(n)
}
func (v auditView) Certified(n uint64) (bool, error) { return v.a.wasCertified(n), nil }

// checkReceipts compares the stored receipts with the header and with the
// replay, and the header's gas used and bloom with the replay.
func (a *auditor) checkReceipts(n uint64, b *chain.Block, it *item, res *state.Reexecution) {
	h := b.Header
	for i, err := range res.Excluded {
		if err != nil && (it.senderErrs == nil || it.senderErrs[i] == nil) {
			a.fail(n, i, CheckReceipt, "an includable transaction", "excluded", fmt.Sprintf("tx %s cannot be included: %v", b.Txs[i].Hash(), err))
		}
	}
	if it.rcptErr != nil {
		a.fail(n, -1, CheckReceiptsRoot, h.ReceiptHash.Hex(), "undecodable", "stored receipts: "+it.rcptErr.Error())
	} else {
		for i, r := range it.receipts {
			if rr := res.Receipts[i]; rr != nil && !sameReceipt(rr, r) {
				a.fail(n, i, CheckReceipt, receiptSummary(rr), receiptSummary(r), fmt.Sprintf("tx %s: the stored receipt is not what replaying gives", b.Txs[i].Hash()))
			}
		}
		if root, err := chain.ReceiptRoot(it.receipts); err != nil || root != h.ReceiptHash {
			a.fail(n, -1, CheckReceiptsRoot, h.ReceiptHash.Hex(), root.Hex(), "the stored receipts do not give the header's receipts root")
		}
	}
}

// checkReasons compares the failure reasons the node kept with block n's
// receipts with the ones replaying gives, text for text. No root commits
// to them: the check is what makes a node's reasons trustworthy. A block
// with none kept has no failure, or was applied before nodes kept
// reasons: there is nothing to compare.
func (a *auditor) checkReasons(n uint64, b *chain.Block, kept, replayed []state.TxReason) {
	if len(kept) == 0 {
		return
	}
	want := make(map[uint32]string, len(replayed))
	for _, r := range replayed {
		want[r.Index] = r.Reason
	}
	for _, r := range kept {
		w, ok := want[r.Index]
		delete(want, r.Index)
		switch {
		case int(r.Index) >= len(b.Txs):
			a.fail(n, int(r.Index), CheckReceiptReason, "no transaction", quoteReason(r.Reason), fmt.Sprintf("a failure reason is kept for tx %d of a block of %d transactions", r.Index, len(b.Txs)))
		case !ok:
			a.fail(n, int(r.Index), CheckReceiptReason, "no reason (replaying, the transaction succeeds or is excluded)", quoteReason(r.Reason), fmt.Sprintf("tx %s: a failure reason is kept for a transaction that does not fail", b.Txs[r.Index].Hash()))
		case w != r.Reason:
			a.fail(n, int(r.Index), CheckReceiptReason, quoteReason(w), quoteReason(r.Reason), fmt.Sprintf("tx %s: the kept failure reason is not the one replaying gives", b.Txs[r.Index].Hash()))
		}
	}
	for _, r := range replayed {
		if _, missing := want[r.Index]; missing {
			a.fail(n, int(r.Index), CheckReceiptReason, quoteReason(r.Reason), "none kept", fmt.Sprintf("tx %s: the block keeps failure reasons but not this transaction's", b.Txs[r.Index].Hash()))
		}
	}
}

// quoteReason shows a reason in a report, quoted and bounded.
func quoteReason(s string) string {
	if len(s) > state.MaxReasonBytes {
		s = s[:state.MaxReasonBytes]
	}
	return fmt.Sprintf("%q", s)
}

// sameReceipt compares the consensus fields of two receipts without
// encoding them.
func sameReceipt(x, y *types.Receipt) bool {
	if x.Type != y.Type || x.Status != y.Status || x.CumulativeGasUsed != y.CumulativeGasUsed || len(x.Logs) != len(y.Logs) {
		return false
	}
	for i, l := range x.Logs {
		m := y.Logs[i]
		if l.Address != m.Address || !slices.Equal(l.Topics, m.Topics) || !bytes.Equal(l.Data, m.Data) {
			return false
		}
	}
	return true
}

func receiptSummary(r *types.Receipt) string {
	return fmt.Sprintf("status %d, cumulative gas %d, %d logs", r.Status, r.CumulativeGasUsed, len(r.Logs))
}

// checkEvents follows the Minted, MintReversed, WithdrawalClaimed/
// Settled/Refunded/Returned and compliance events of block n's receipts,
// on the state before the block.
func (a *auditor) checkEvents(n uint64, receipts []*types.Receipt) error {
	pre := a.replay.DB()
	for i, r := range receipts {
		if r == nil {
			continue
		}
		for _, l := range r.Logs {
			if len(l.Topics) == 0 {
				continue
			}
			switch id := l.Topics[0]; id {
			case evMinted.ID:
				if len(l.Topics) != 4 {
					continue
				}
				ref := l.Topics[1]
				at, dup, err := a.index.event(eventMinted, ref[:])
				if err != nil {
					return err
				}
				if dup {
					a.fail(n, i, CheckBankRef, "a bank reference never minted", ref.Hex(), fmt.Sprintf("bank reference %s minted again (first at height %d)", ref, at))
				} else if used, err := pre.BankRefUsed(ref); err != nil {
					return fmt.Errorf("replay: %w", err)
				} else if used {
					a.fail(n, i, CheckBankRef, "a bank reference never minted", ref.Hex(), fmt.Sprintf("bank reference %s minted again (it had minted before this block)", ref))
				} else if err := a.index.setEvent(eventMinted, ref[:], n); err != nil {
					return err
				}
				a.addEvent(a.minted, l)
			case evSettled.ID, evRefunded.ID:
				if len(l.Topics) != 4 {
					continue
				}
				if id == evSettled.ID {
					a.addEvent(a.burned, l)
					if wid := l.Topics[1].Big(); wid.IsUint64() {
						if err := a.index.setEvent(eventSettled, withdrawalKey(wid.Uint64()), n); err != nil {
							return err
						}
					}
				}
				if err := a.checkClose(n, i, l, pre); err != nil {
					return err
				}
			case evClaimed.ID:
				if len(l.Topics) == 4 {
					if err := a.checkClaim(n, i, l, pre); err != nil {
						return err
					}
				}
			case evReturned.ID:
				if len(l.Topics) != 4 {
					continue
				}
				a.addEvent(a.minted, l)
				if err := a.checkReturn(n, i, l, pre); err != nil {
					return err
				}
			case evReversed.ID:
				if len(l.Topics) != 4 {
					continue
				}
				a.addEvent(a.burned, l)
				if err := a.checkReversal(n, i, l, pre); err != nil {
					return err
				}
			}
			if ev, ok := reasonEvents[l.Topics[0]]; ok {
				if reason, ok := eventReason(ev, l); !ok || reason == "" {
					a.fail(n, i, CheckComplianceReason, "a non-empty reason", fmt.Sprintf("%q", reason), ev.Name+" without a reason")
				}
			}
		}
	}
	return nil
}

// checkClose records a withdrawal's settlement or refund and fails a second one.
func (a *auditor) checkClose(n uint64, i int, l *types.Log, pre *store.DB) error {
	id, ok, err := a.firstTime(n, i, l, eventClosed, "settled or refunded once", "closed")
	if !ok {
		return err
	}
	if w, ok, err := pre.Withdrawal(id); err == nil && ok && w.Status != state.WithdrawalPending {
		a.fail(n, i, CheckWithdrawal, "settled or refunded once", "twice", fmt.Sprintf("withdrawal %d was already closed before this block", id))
	}
	return nil
}

// withdrawalID reads the withdrawal id of an event's first topic.
func (a *auditor) withdrawalID(n uint64, i int, l *types.Log) (uint64, bool) {
	idBig := l.Topics[1].Big()
	if !idBig.IsUint64() {
		a.fail(n, i, CheckWithdrawal, "a withdrawal id", l.Topics[1].Hex(), "withdrawal id out of range")
		return 0, false
	}
	return idBig.Uint64(), true
}

// firstTime reads the withdrawal id of event l and records it in the
// index as an event of kind at height n; an id recorded before fails the
// check (what is the expectation, verb the event's past tense) and
// returns false, as an unreadable id does. err is the index's.
func (a *auditor) firstTime(n uint64, i int, l *types.Log, kind eventKind, what, verb string) (uint64, bool, error) {
	id, ok := a.withdrawalID(n, i, l)
	if !ok {
		return 0, false, nil
	}
	at, dup, err := a.index.event(kind, withdrawalKey(id))
	if err != nil {
		return 0, false, err
	}
	if dup {
		a.fail(n, i, CheckWithdrawal, what, "twice", fmt.Sprintf("withdrawal %d %s again (first at height %d)", id, verb, at))
		return 0, false, nil
	}
	if err := a.index.setEvent(kind, withdrawalKey(id), n); err != nil {
		return 0, false, err
	}
	return id, true, nil
}

// checkClaim fails a withdrawal claimed twice: a claim is what lets one
// bank's bridge send a payment order, so a second would let two pay.
func (a *auditor) checkClaim(n uint64, i int, l *types.Log, pre *store.DB) error {
	id, ok, err := a.firstTime(n, i, l, eventClaimed, "claimed once", "claimed")
	if !ok {
		return err
	}
	if w, ok, err := pre.Withdrawal(id); err == nil && ok && w.Claimed() {
		a.fail(n, i, CheckWithdrawal, "claimed once", "twice", fmt.Sprintf("withdrawal %d was already claimed by %s before this block", id, w.Bank))
	}
	return nil
}

// checkReturn fails a withdrawal returned twice or returned without being
// settled.
func (a *auditor) checkReturn(n uint64, i int, l *types.Log, pre *store.DB) error {
	id, ok, err := a.firstTime(n, i, l, eventReturned, "returned at most once", "returned")
	if !ok {
		return err
	}
	w, found, err := pre.Withdrawal(id)
	if err != nil {
		return nil
	}
	_, settled, err := a.index.event(eventSettled, withdrawalKey(id))
	if err != nil {
		return err
	}
	switch {
	case found && w.Status == state.WithdrawalReturned:
		a.fail(n, i, CheckWithdrawal, "returned at most once", "twice", fmt.Sprintf("withdrawal %d was already returned before this block", id))
	case (!found || w.Status != state.WithdrawalSettled) && !settled:
		a.fail(n, i, CheckWithdrawal, "returned after it settled", "not settled", fmt.Sprintf("withdrawal %d returned but never settled", id))
	}
	return nil
}

// checkReversal fails a mint reversed twice or a reversal of a bank
// reference that never minted.
func (a *auditor) checkReversal(n uint64, i int, l *types.Log, pre *store.DB) error {
	ref := l.Topics[1]
	at, dup, err := a.index.event(eventReversed, ref[:])
	if err != nil {
		return err
	}
	if dup {
		a.fail(n, i, CheckBankRef, "a mint reversed at most once", "twice", fmt.Sprintf("the mint of bank reference %s reversed again (first at height %d)", ref, at))
		return nil
	}
	if err := a.index.setEvent(eventReversed, ref[:], n); err != nil {
		return err
	}
	m, found, err := pre.MintRecord(ref)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	_, mintedHere, err := a.index.event(eventMinted, ref[:])
	if err != nil {
		return err
	}
	switch {
	case found && m.Reversed:
		a.fail(n, i, CheckBankRef, "a mint reversed at most once", "twice", fmt.Sprintf("the mint of bank reference %s was already reversed before this block", ref))
	case !found && !mintedHere:
		a.fail(n, i, CheckBankRef, "a reversal of a minted bank reference", ref.Hex(), fmt.Sprintf("bank reference %s reversed but never minted", ref))
	}
	return nil
}

// addEvent adds an asset event's amount (the first data word) to sums.
func (a *auditor) addEvent(sums map[uint32]*big.Int, l *types.Log) {
	id, ok := chain.AssetID(l.Address)
	if !ok || len(l.Data) < 32 {
		return
	}
	if sums[id] == nil {
		sums[id] = new(big.Int)
	}
	sums[id].Add(sums[id], a.scratch.SetBytes(l.Data[:32]))
}

// eventReason decodes a compliance event's reason.
func eventReason(ev abi.Event, l *types.Log) (string, bool) {
	vals, err := ev.Inputs.NonIndexed().Unpack(l.Data)
	if err != nil || len(vals) == 0 {
		return "", false
	}
	s, ok := vals[len(vals)-1].(string)
	return s, ok
}

// finish checks the supply and, at the source's head, the final state.
func (a *auditor) finish(ctx context.Context, digest store.StateDigest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	to := a.rep.To // below the asked height when the audit stopped at a gap
	table, err := a.replay.DB().SupplyTable()
	if err != nil {
		a.fail(to, -1, CheckSupply, "balances of known assets", "error", err.Error())
	}
	for _, s := range table {
		wantMinted, wantBurned := new(big.Int), new(big.Int)
		if int(s.ID) < len(a.startSupply) {
			wantMinted.Set(a.startSupply[s.ID].Minted)
			wantBurned.Set(a.startSupply[s.ID].Burned)
		}
		if m := a.minted[s.ID]; m != nil {
			wantMinted.Add(wantMinted, m)
		}
		if b := a.burned[s.ID]; b != nil {
			wantBurned.Add(wantBurned, b)
		}
		line := SupplyLine{Symbol: s.Symbol, Minted: s.Minted.String(), Burned: s.Burned.String(), Escrow: s.Escrow.String(),
			Balances: s.Balances.String(), Supply: new(big.Int).Sub(s.Minted, s.Burned).String(), OK: true}
		if !s.Conserved() {
			line.OK = false
			a.fail(to, -1, CheckSupply, line.Supply, new(big.Int).Add(s.Balances, s.Escrow).String(),
				fmt.Sprintf("%s: balances %s + escrow %s != minted %s − burned %s", s.Symbol, s.Balances, s.Escrow, s.Minted, s.Burned))
		}
		if s.Minted.Cmp(wantMinted) != 0 || s.Burned.Cmp(wantBurned) != 0 {
			line.OK = false
			a.fail(to, -1, CheckSupply, fmt.Sprintf("minted %s, burned %s", wantMinted, wantBurned), fmt.Sprintf("minted %s, burned %s", s.Minted, s.Burned),
				fmt.Sprintf("%s: the issuance record is not the starting one plus the Minted, WithdrawalReturned, WithdrawalSettled and MintReversed events", s.Symbol))
		}
		a.rep.Supply = append(a.rep.Supply, line)
	}
	if err := a.checkEscrow(to, "replayed", a.replay.DB(), table); err != nil {
		return err
	}
	if a.rep.To != digest.Height {
		return nil
	}
	if l, ok := a.cfg.Source.(stateLister); ok {
		stored, err := l.stateDB().SupplyTable()
		if err != nil {
			a.fail(to, -1, CheckEscrow, "the stored supply records", "error", err.Error())
		} else if err := a.checkEscrow(to, "stored", l.stateDB(), stored); err != nil {
			return err
		}
	}
	a.rep.FinalStateChecked = true
	if digest.StateRoot != a.prevRoot {
		a.fail(digest.Height, -1, CheckFinalState, a.prevRoot.Hex(), digest.StateRoot.Hex(), "the stored head's state root is not the head block's")
	}
	got, err := a.replay.StateDigest()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if got.Keys == digest.Keys && got.Digest == digest.Digest {
		return nil
	}
	detail := "the stored state is not the replayed one"
	if l, ok := a.cfg.Source.(stateLister); ok {
		if d, found, err := a.replay.FirstDifference(l.stateDB()); err == nil && found {
			detail = fmt.Sprintf("first difference at state key %x (%s): replayed %s, stored %s", d.Key, keyKind(d.Key), valueOrNone(d.Replayed), valueOrNone(d.Stored))
		}
	}
	a.fail(digest.Height, -1, CheckFinalState, fmt.Sprintf("%d keys, digest %s", got.Keys, got.Digest), fmt.Sprintf("%d keys, digest %s", digest.Keys, digest.Digest), detail)
	return nil
}

func u64s(v uint64) string { return fmt.Sprint(v) }

func valueOrNone(v []byte) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprintf("%x", v)
}

// checkEscrow checks, on one state (the replay's, or a data dir's stored
// one), that every asset's escrow is exactly what its open escrow records
// hold (state.EscrowOf: pending withdrawals, open exchange offers, held
// payments awaiting a confirmation): escrow that no record accounts for,
// or a record whose money is not in escrow, is forged. An error is a
// failed read of the state.
func (a *auditor) checkEscrow(at uint64, which string, db *store.DB, table []store.AssetSupply) error {
	held := make([]*big.Int, len(table))
	for i := range held {
		held[i] = new(big.Int)
	}
	err := db.IterateState(func(k, v []byte) error {
		asset, amount, open, err := state.EscrowOf(k, v)
		switch {
		case err != nil:
			a.fail(at, -1, CheckEscrow, "a decodable record", fmt.Sprintf("key %x", k), fmt.Sprintf("%s state: %v", which, err))
		case !open:
		case int(asset) >= len(held):
			a.fail(at, -1, CheckEscrow, "a known asset", fmt.Sprintf("asset %d", asset), fmt.Sprintf("%s state: %s record %x holds escrow of an unknown asset", which, keyKind(k), k))
		default:
			held[asset].Add(held[asset], amount)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("escrow of the %s state: %w", which, err)
	}
	for i, s := range table {
		if s.Escrow.Cmp(held[i]) != 0 {
			a.fail(at, -1, CheckEscrow, fmt.Sprintf("%s escrow %s", s.Symbol, held[i]), s.Escrow.String(),
				fmt.Sprintf("%s state: the open withdrawals, offers and held payments of %s hold %s, its supply record says %s in escrow", which, s.Symbol, held[i], s.Escrow))
		}
	}
	return nil
}

// keyKind names a state key's kind (docs/architecture.md, state keys).
func keyKind(k []byte) string {
	if len(k) < 2 {
		return "unknown"
	}
	switch string(k[:2]) {
	case "sn":
		return "nonce"
	case "sb":
		return "balance"
	case "sv":
		return "validator"
	case "sl":
		return "validator list"
	case "sL":
		return "validator set history"
	case "sg":
		return "governance proposal"
	case "sj":
		return "last proposal id"
	case "sx":
		return "governance schedule"
	case "sh":
		return "rules history"
	case "sr":
		return "rules"
	case "sk":
		return "KYC tier and freeze"
	case "so":
		return "daily outflow"
	case "ss":
		return "supply"
	case "sm":
		return "bank reference (mint record)"
	case "si":
		return "bank issuance"
	case "sR":
		return "bank key successor"
	case "sw":
		return "withdrawal"
	case "sq":
		return "last withdrawal id"
	case "sp":
		return "payment"
	case "sa":
		return "allowance"
	case "sf":
		return "exchange offer"
	case "sF":
		return "last offer id"
	case "sc":
		return "confirmation settings"
	case "sP":
		return "held payment"
	case "sQ":
		return "last held payment id"
	case "sE":
		return "held payments expiring in a second"
	case "sT":
		return "held payment sweep cursor"
	case "sd":
		return "dispute"
	case "sD":
		return "last dispute id"
	case "sO":
		return "active dispute of a payment"
	}
	return "unknown"
}
