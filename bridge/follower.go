package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/bridge/iso20022"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// The events the follower reads: requests make payouts; the closing
// events tell an instance what the bank's other instance did (closedOnChain).
var (
	withdrawalRequested = chain.AssetABI.Events["WithdrawalRequested"]
	eventSettled        = chain.AssetABI.Events["WithdrawalSettled"]
	eventRefunded       = chain.AssetABI.Events["WithdrawalRefunded"]
	eventReturned       = chain.AssetABI.Events["WithdrawalReturned"]
)

// maxRangesPerRound bounds the eth_getLogs calls of one follower round, so
// a bridge catching up on a long chain still yields to Close promptly.
const maxRangesPerRound = 20

// followRound reads WithdrawalRequested logs of the asset's facade from the
// durable cursor up to the head, in ranges of at most follower.max-range
// blocks, and records a payout for each withdrawal whose holder has a
// linked account. The payouts of a range and the cursor past it are one
// synced batch: a crash either loses both (the range is read again; the
// payouts are keyed by withdrawal id, so reading twice adds nothing) or
// keeps both.
func (b *Bridge) followRound(ctx context.Context) error {
	next, set, err := b.store.Cursor()
	if err != nil {
		return err
	}
	if !set {
		next = b.cfg.Follower.StartBlock
	}
	head, err := b.nodes.blockNumber(ctx)
	if err != nil {
		return err
	}
	if next > 0 {
		b.metrics.height.Set(float64(next - 1))
	}
	for i := 0; i < maxRangesPerRound && next <= head; i++ {
		to := min(head, next+b.cfg.Follower.MaxRange-1)
		logs, to, err := b.withdrawalLogs(ctx, next, to)
		if err != nil {
			return err
		}
		var payouts []*Payout
		for _, l := range logs {
			if l.Topics[0] != withdrawalRequested.ID {
				// Before the cursor moves past it: a crash reads it again.
				if err := b.closedOnChain(l); err != nil {
					return fmt.Errorf("block %d tx %s: %w", l.BlockNumber, l.TxHash, err)
				}
				continue
			}
			p, err := b.payoutFromLog(l)
			if err != nil {
				return fmt.Errorf("block %d tx %s: %w", l.BlockNumber, l.TxHash, err)
			}
			if p != nil {
				payouts = append(payouts, p)
			}
		}
		added, err := b.store.AddPayouts(payouts, to+1)
		if err != nil {
			return err
		}
		if added > 0 {
			b.log.Info("withdrawals to pay out", "count", added, "from", next, "to", to)
			kick(b.kickPayout)
		}
		b.metrics.height.Set(float64(to))
		next = to + 1
	}
	return nil
}

// withdrawalLogs reads the logs of from..to, halving the range while the
// node answers that it matches too many logs. It returns the range it read.
func (b *Bridge) withdrawalLogs(ctx context.Context, from, to uint64) ([]types.Log, uint64, error) {
	for {
		q := ethereum.FilterQuery{
			FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(to),
			Addresses: []common.Address{b.info.Facade},
			Topics:    [][]common.Hash{{withdrawalRequested.ID, eventSettled.ID, eventRefunded.ID, eventReturned.ID}},
		}
		logs, err := b.nodes.filterLogs(ctx, q)
		if err != nil && strings.Contains(err.Error(), "query returned more than") && to > from {
			to = from + (to-from)/2
			continue
		}
		return logs, to, err
	}
}

// closedOnChain applies a WithdrawalSettled, WithdrawalRefunded or
// WithdrawalReturned log of this bank to a payout this instance ordered
// and has no outcome for: the bank's core reported the outcome to the
// bank's other instance (one address in front of both), which closed the
// withdrawal on chain. The payout takes the chain's word as its outcome
// and the closer closes it, reading the chain; a later report of the same
// word is then a duplicate, the opposite one a conflict, as for any
// outcome. A payout this instance closed as settled that the other
// instance then returned becomes returned. Logs of other banks, and of
// payouts in any other state, change nothing: their own steps read the
// chain (the claim, the closer).
func (b *Bridge) closedOnChain(l types.Log) error {
	if len(l.Topics) != 4 || l.Address != b.info.Facade {
		return fmt.Errorf("log %d is not a withdrawal event of %s", l.Index, b.info.Facade)
	}
	if common.BytesToAddress(l.Topics[2][:]) != b.bank {
		return nil
	}
	idBig := new(big.Int).SetBytes(l.Topics[1][:])
	if !idBig.IsUint64() {
		return nil // not a withdrawal this bridge can have recorded
	}
	note := StatusNote{At: b.now().UTC(), Level: LevelTransaction, Reason: "closed on chain by another instance of this bank, tx " + l.TxHash.Hex()}
	var moved string
	_, err := b.store.ModifyPayout(idBig.Uint64(), func(p *Payout) (bool, error) {
		switch {
		case p.Status == PayoutOrdered && l.Topics[0] == eventSettled.ID:
			p.Status, p.Outcome = PayoutSettling, iso20022.StatusAcceptedSettlementCompleted
		case p.Status == PayoutOrdered && l.Topics[0] == eventRefunded.ID:
			p.Status, p.Outcome, p.Reason = PayoutRefunding, iso20022.StatusRejected, "refunded on chain by another instance of this bank"
		case p.Status == PayoutOrdered && l.Topics[0] == eventReturned.ID:
			p.Status, p.Outcome = PayoutReturning, iso20022.StatusAcceptedSettlementCompleted
			p.Returned, p.ReturnReason = statusReturned, "returned on chain by another instance of this bank"
		case p.Status == PayoutClosed && p.Closed == "settled" && l.Topics[0] == eventReturned.ID:
			p.Closed, p.Returned, p.ReturnReason = "returned", statusReturned, "returned on chain by another instance of this bank"
		default:
			return false, nil
		}
		note.Status = p.Outcome
		p.note(note)
		p.UpdatedAt = note.At
		moved = string(p.Status)
		return true, nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case moved != "":
		b.log.Info("payout closed by another instance of this bank", "id", idBig, "status", moved, "tx", l.TxHash)
		kick(b.kickCloser)
	}
	return nil
}

// payoutFromLog decodes a WithdrawalRequested log into a payout, or nil
// when the holder has no linked account at this bank (the withdrawal is
// another issuing bank's to pay).
func (b *Bridge) payoutFromLog(l types.Log) (*Payout, error) {
	if len(l.Topics) != 3 || l.Topics[0] != withdrawalRequested.ID || l.Address != b.info.Facade {
		return nil, fmt.Errorf("log %d is not a WithdrawalRequested of %s", l.Index, b.info.Facade)
	}
	idBig := new(big.Int).SetBytes(l.Topics[1][:])
	if !idBig.IsUint64() {
		return nil, fmt.Errorf("withdrawal id %s does not fit 64 bits", idBig)
	}
	holder := common.BytesToAddress(l.Topics[2][:])
	vals, err := withdrawalRequested.Inputs.NonIndexed().Unpack(l.Data)
	if err != nil || len(vals) != 2 {
		return nil, fmt.Errorf("decode WithdrawalRequested data: %v", err)
	}
	amount, ok1 := vals[0].(*big.Int)
	ref, ok2 := vals[1].([32]byte)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("decode WithdrawalRequested data: got %T, %T", vals[0], vals[1])
	}
	account, err := b.payoutAccount(holder, ref)
	if err != nil || account == "" {
		return nil, err
	}
	now := b.now().UTC()
	id := idBig.Uint64()
	return &Payout{ID: id, Holder: holder, Amount: amount, PayoutRef: ref, Account: account,
		EndToEndID: PayoutEndToEndID(b.info.ChainID, b.info.Symbol, id), Block: l.BlockNumber, RequestTx: l.TxHash,
		Status: PayoutNew, CreatedAt: now, UpdatedAt: now}, nil
}

// payoutAccount picks the account a holder's withdrawal is paid to: of the
// accounts linked to the holder, the one payoutRef names (its keccak256,
// or its text right-padded with zeros to 32 bytes, as `tally op` writes
// text into a bytes32), else the one linked last. "" when none is linked.
func (b *Bridge) payoutAccount(holder common.Address, payoutRef common.Hash) (string, error) {
	accts, err := b.store.LinksOf(holder)
	if err != nil || len(accts) == 0 {
		return "", err
	}
	for _, a := range accts {
		var padded [32]byte
		if len(a) <= 32 {
			copy(padded[:], a)
		}
		if crypto.Keccak256([]byte(a)) == payoutRef || (len(a) <= 32 && bytes.Equal(padded[:], payoutRef[:])) {
			return a, nil
		}
	}
	best := ""
	var bestLink *Link
	for _, a := range accts {
		l, err := b.store.Link(a)
		if err != nil {
			return "", err
		}
		if bestLink == nil || l.LinkedAt.After(bestLink.LinkedAt) {
			best, bestLink = a, l
		}
	}
	return best, nil
}
