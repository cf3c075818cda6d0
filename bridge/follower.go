package bridge

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"strings"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// withdrawalRequested is the event the follower reads.
var withdrawalRequested = chain.AssetABI.Events["WithdrawalRequested"]

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
			Addresses: []common.Address{b.info.Facade}, Topics: [][]common.Hash{{withdrawalRequested.ID}},
		}
		logs, err := b.nodes.filterLogs(ctx, q)
		if err != nil && strings.Contains(err.Error(), "query returned more than") && to > from {
			to = from + (to-from)/2
			continue
		}
		return logs, to, err
	}
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
