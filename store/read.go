package store

import (
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/state"
)

// applied reports whether block n is at or below the head. Pebble makes a
// committed batch readable before its WAL fsync returns, so a block's keys
// (its body, hash, transaction locations, receipts, index entries) can be
// read for the length of an fsync before the head says it is applied.
// Every read that finds a block by those keys checks it here, so a client
// never sees a receipt and then a "latest" state without its effects (nor
// a block that is not yet durable).
func (d *DB) applied(n uint64) bool {
	h, ok := d.Head()
	return ok && n <= h.Number
}

// BlockByNumber returns block n of the applied chain, or ErrNotFound. The
// block may be shared with other callers: do not modify it.
func (d *DB) BlockByNumber(n uint64) (*chain.Block, error) {
	if !d.applied(n) {
		return nil, fmt.Errorf("block %d: %w", n, ErrNotFound)
	}
	if b, ok := d.blocks.Get(n); ok {
		return b, nil
	}
	v, err := d.get(numKey(prefixBlock, n))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("block %d: %w", n, ErrNotFound)
	}
	b, err := chain.DecodeBlock(v)
	if err != nil {
		return nil, fmt.Errorf("stored block %d: %w", n, err)
	}
	d.blocks.Add(n, b)
	return b, nil
}

// BlockNumberByHash returns the height of the block with hash h, or ErrNotFound.
func (d *DB) BlockNumberByHash(h common.Hash) (uint64, error) {
	v, err := d.get(hashKey(prefixHash, h))
	if err != nil {
		return 0, err
	}
	if len(v) != 8 || !d.applied(binary.BigEndian.Uint64(v)) {
		return 0, fmt.Errorf("block %s: %w", h, ErrNotFound)
	}
	return binary.BigEndian.Uint64(v), nil
}

// Receipts returns the receipts of block b, every field derived. They may
// be shared with other callers: do not modify them.
func (d *DB) Receipts(b *chain.Block) ([]*types.Receipt, error) {
	if rs, ok := d.receipts.Get(b.Number()); ok && len(rs) == len(b.Txs) && (len(rs) == 0 || rs[0].BlockHash == b.Hash()) {
		return rs, nil
	}
	v, err := d.get(numKey(prefixRcpt, b.Number()))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("receipts of block %d: %w", b.Number(), ErrNotFound)
	}
	rs, err := chain.DecodeReceipts(v, b)
	if err != nil {
		return nil, err
	}
	d.receipts.Add(b.Number(), rs)
	return rs, nil
}

// TxLocation returns the block height and index of an applied transaction.
func (d *DB) TxLocation(h common.Hash) (number uint64, index uint32, err error) {
	v, err := d.get(hashKey(prefixTx, h))
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 12 || !d.applied(binary.BigEndian.Uint64(v)) {
		return 0, 0, fmt.Errorf("tx %s: %w", h, ErrNotFound)
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:]), nil
}

// HasTx reports whether a transaction with hash h was applied, counting a
// block being committed (admission refuses it as known a moment early).
func (d *DB) HasTx(h common.Hash) (bool, error) {
	v, err := d.get(hashKey(prefixTx, h))
	return v != nil, err
}

// Nonce returns the next nonce of a in the latest applied state.
func (d *DB) Nonce(a common.Address) (uint64, error) { return state.ReadNonce(d, a) }

// Balance returns a's balance of asset in the latest applied state.
func (d *DB) Balance(asset uint32, a common.Address) (*big.Int, error) {
	return state.ReadBalance(d, asset, a)
}

// HistoryEntry is one transaction in an account's history.
type HistoryEntry struct {
	Number uint64
	Index  uint32
	Flags  byte // HistorySent, HistoryReceived
}

// AccountHistory returns up to limit entries of a's history, newest first,
// strictly older than (before.Number, before.Index) when before is non-nil.
func (d *DB) AccountHistory(a common.Address, before *HistoryEntry, limit int) ([]HistoryEntry, error) {
	lower := append(append([]byte(nil), prefixAcct...), a[:]...)
	upper := upperBound(lower)
	if before != nil {
		upper = acctKey(a, before.Number, before.Index)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	head, _ := d.Head()
	for it.Last(); it.Valid() && len(out) < limit; it.Prev() {
		k := it.Key()[len(lower):]
		if binary.BigEndian.Uint64(k) > head.Number {
			continue // being committed (DB.applied)
		}
		flags := byte(0)
		if v := it.Value(); len(v) == 1 {
			flags = v[0]
		}
		out = append(out, HistoryEntry{Number: binary.BigEndian.Uint64(k), Index: binary.BigEndian.Uint32(k[8:]), Flags: flags})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("account history of %s: %w", a, err)
	}
	return out, nil
}

// view returns a read-only overlay on the applied state.
func (d *DB) view() *state.Overlay { return state.NewOverlay(d) }

// Rules returns the rules in force at the head.
func (d *DB) Rules() (*state.Rules, error) { return state.LoadRules(d) }

// HeldDue reports whether a held payment still pending has reached its
// expiry at the head's block time (state.HeldDue): what admission checks
// before it takes an expirePayments, and the node's keeper before it
// sends one.
func (d *DB) HeldDue() (bool, error) {
	h, ok := d.Head()
	if !ok {
		return false, nil
	}
	return state.HeldDue(d, h.TimeMs)
}

// Account returns a's compliance record.
func (d *DB) Account(a common.Address) (state.Account, error) { return d.view().Account(a) }

// Supply returns the issuance record of asset id.
func (d *DB) Supply(id uint32) (state.Supply, error) { return d.view().Supply(id) }

// Withdrawal returns withdrawal id; ok is false if there is none.
func (d *DB) Withdrawal(id uint64) (state.Withdrawal, bool, error) { return d.view().Withdrawal(id) }

// MintRecord returns what bankRef minted; ok is false if it has not.
func (d *DB) MintRecord(ref common.Hash) (state.MintRecord, bool, error) {
	return d.view().MintRecord(ref)
}

// Issuance returns bank's issuance record of asset.
func (d *DB) Issuance(asset uint32, bank common.Address) (state.Issuance, error) {
	return d.view().Issuance(asset, bank)
}

// BankRefUsed reports whether bankRef has minted.
func (d *DB) BankRefUsed(ref common.Hash) (bool, error) { return d.view().BankRefUsed(ref) }

// HeadContext is the block context of a call on the head state (eth_call):
// the next height, at the head's time.
func (d *DB) HeadContext() state.BlockContext {
	h, _ := d.Head()
	return state.BlockContext{Number: h.Number + 1, TimeMs: h.TimeMs}
}

// RemainingDaily is what a may still send of asset id today (UTC day of the
// head's time); nil means unlimited.
func (d *DB) RemainingDaily(id uint32, a common.Address) (*big.Int, error) {
	rules, err := d.Rules()
	if err != nil {
		return nil, err
	}
	return state.RemainingDaily(d.view(), rules, d.HeadContext(), id, a)
}

// RiskStatus is a's risk status at the head's time (tally_getAccount):
// its active suspension, watch list entry and velocity counters.
func (d *DB) RiskStatus(a common.Address) (state.RiskStatus, error) {
	rules, err := d.Rules()
	if err != nil {
		return state.RiskStatus{}, err
	}
	return state.ReadRiskStatus(d.view(), rules, d.HeadContext(), a)
}

// CheckConservation checks DESIGN.md decision 9 for every asset on the
// applied state: sum of balances + escrow = minted − burned. It reads every
// balance; tests call it after every block, the audit after replay.
func (d *DB) CheckConservation() error {
	rules, err := d.Rules()
	if err != nil {
		return err
	}
	sums := make([]*big.Int, len(rules.Assets))
	for i := range sums {
		sums[i] = new(big.Int)
	}
	d.mu.RLock()
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: prefixBalance, UpperBound: upperBound(prefixBalance)})
	if err != nil {
		d.mu.RUnlock()
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(prefixBalance):]
		id := binary.BigEndian.Uint32(k)
		if int(id) >= len(sums) {
			it.Close()
			d.mu.RUnlock()
			return fmt.Errorf("%w: balance of unknown asset %d", state.ErrConservation, id)
		}
		sums[id].Add(sums[id], new(big.Int).SetBytes(it.Value()))
	}
	err = it.Close()
	d.mu.RUnlock()
	if err != nil {
		return err
	}
	for id, sum := range sums {
		s, err := d.Supply(uint32(id))
		if err != nil {
			return err
		}
		held := new(big.Int).Add(sum, s.Escrow)
		if want := new(big.Int).Sub(s.Minted, s.Burned); held.Cmp(want) != 0 {
			return fmt.Errorf("%w: asset %s: balances %s + escrow %s != minted %s - burned %s", state.ErrConservation, rules.Assets[id].Symbol, sum, s.Escrow, s.Minted, s.Burned)
		}
	}
	return nil
}

// ValidatorInfos returns the current validators with their keys, sorted by address.
func (d *DB) ValidatorInfos() ([]state.ValidatorInfo, error) {
	o := d.view()
	var out []state.ValidatorInfo
	for _, a := range d.Validators() {
		v, ok, err := o.Validator(a)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// ValidatorChange is an approved change of the validator set that is not
// in effect yet: the leader reconciles Raft membership with it before
// EffectiveHeight (DESIGN.md decision 8).
type ValidatorChange struct {
	ProposalID uint64
	// Add is true for a new validator, false for a removal.
	Add             bool
	Validator       state.ValidatorInfo
	EffectiveHeight uint64
}

// PendingValidatorChanges returns the approved validator changes not yet
// in effect, in the order they will apply.
func (d *DB) PendingValidatorChanges() ([]ValidatorChange, error) {
	o := d.view()
	sched, err := o.Schedule()
	if err != nil {
		return nil, err
	}
	var out []ValidatorChange
	for _, s := range sched {
		p, ok, err := o.Proposal(s.ID)
		if err != nil || !ok {
			return nil, fmt.Errorf("scheduled proposal %d: %v", s.ID, err)
		}
		if p.Kind != state.KindAddValidator && p.Kind != state.KindRemoveValidator {
			continue
		}
		m, err := chain.GovernanceABI.MethodById(p.Change[:4])
		if err != nil {
			return nil, fmt.Errorf("proposal %d: %w", s.ID, err)
		}
		args, err := m.Inputs.Unpack(p.Change[4:])
		if err != nil {
			return nil, fmt.Errorf("proposal %d: %w", s.ID, err)
		}
		c := ValidatorChange{ProposalID: s.ID, Add: p.Kind == state.KindAddValidator, EffectiveHeight: s.Height}
		if c.Add {
			pub := args[1].([]byte)
			pk, err := ethcrypto.DecompressPubkey(pub)
			if err != nil {
				return nil, fmt.Errorf("proposal %d: %w", s.ID, err)
			}
			c.Validator = state.ValidatorInfo{Address: ethcrypto.PubkeyToAddress(*pk), Name: args[0].(string), PublicKey: pub}
		} else {
			a := args[0].(common.Address)
			v, _, err := o.Validator(a)
			if err != nil {
				return nil, err
			}
			c.Validator = v
			c.Validator.Address = a
		}
		out = append(out, c)
	}
	return out, nil
}

// Proposal returns governance proposal id; ok is false if there is none.
func (d *DB) Proposal(id uint64) (state.Proposal, bool, error) { return d.view().Proposal(id) }

// RulesAt returns the rules in force at height n (the state keeps every
// version with the height it took effect at).
func (d *DB) RulesAt(n uint64) (*genesis.Rules, error) {
	raw, err := d.lastAtOrBelow(prefixRulesHistory, n)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("rules at height %d: %w", n, ErrNotFound)
	}
	return genesis.ParseRules(raw)
}
