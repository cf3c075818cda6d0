package state

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// Transition is the state transition function of one block, the one the
// FSM applies (store.DB.ApplyBlock) and the simulator runs: it checks the
// prepared block against its parent and chain (CheckBlock), executes it on
// base (the parent's state) and checks the header's commitments against
// the result (CheckExecution). It reads nothing but its arguments, so every
// node computes the same outcome.
//
// A block breaking a rule returns its violations and a nil result: the
// caller skips it. A non-nil error is halting (a certificate showing this
// node diverged or behind, supply not conserved, a failed read of base):
// the node's state can no longer be trusted.
func Transition(p *Prepared, par Parent, view ChainView, base Reader, chainID uint64) (*Result, []Violation, error) {
	res, violations, _, err := TransitionReusing(p, par, view, base, chainID, nil)
	return res, violations, err
}

// TransitionReusing is Transition for a block whose execution may already
// be known: executed (nil: none) is what the proposer's Build computed for
// p.Block on par's state (Built.Result), which the caller holds only for
// exactly that block on exactly that parent. The block is checked as in
// Transition (CheckBlock: links, seal, every transaction's signature);
// then, if executed reproduces every commitment of the header
// (CheckExecution), it is the result and the block is not executed again
// (reused true). An executed that does not (a defect in whoever kept it)
// is never taken on trust: the block is executed as on every other node,
// so the verdict is the same everywhere.
func TransitionReusing(p *Prepared, par Parent, view ChainView, base Reader, chainID uint64, executed *Result) (res *Result, violations []Violation, reused bool, err error) {
	b := p.Block
	violations = CheckBlock(p, par, view, chainID)
	for _, v := range violations {
		if v.Halting() || errors.Is(v.Err, ErrStorage) {
			return nil, nil, false, v.Err
		}
	}
	if len(violations) > 0 {
		return nil, violations, false, nil
	}
	if executed != nil && len(CheckExecution(b.Header, par.Root, executed)) == 0 {
		return executed, nil, true, nil
	}
	res, violations, err = execute(p, par, base)
	return res, violations, false, err
}

// execute runs a checked block on base and checks the header's
// commitments against the result.
func execute(p *Prepared, par Parent, base Reader) (*Result, []Violation, error) {
	b := p.Block
	timeMs, _ := chain.TimeMs(b.Header) // checked by CheckBlock
	res, err := Execute(base, BlockContext{Number: b.Number(), TimeMs: timeMs}, b.Txs, p.Senders)
	var txErr *TxError
	switch {
	case errors.Is(err, ErrConservation):
		return nil, nil, err // the execution is wrong
	case errors.Is(err, ErrStorage):
		return nil, nil, err // this node's disk, not the block
	case errors.As(err, &txErr):
		return nil, []Violation{violation(RuleIncludable, txErr.Index, "an includable transaction", "excluded", txErr)}, nil
	case err != nil: // as the audit's replay (Reexecute), which stops there
		return nil, []Violation{violation(RuleIncludable, -1, "", "", fmt.Errorf("execute: %w", err))}, nil
	}
	if violations := CheckExecution(b.Header, par.Root, res); len(violations) > 0 {
		return nil, violations, nil
	}
	return res, nil, nil
}

// Reexecution is what Reexecute produced.
type Reexecution struct {
	*Result
	// Excluded[i] says why tx i could not be included (its signature, or a
	// nonce that is not the sender's next); nil when every tx was included.
	Excluded []error
}

// Reexecute is the audit's execution of a stored block: it runs b's
// transactions with their senders on base, then the governance changes
// due at the end of b (as Execute does), and instead of stopping at a
// transaction that cannot be included it records why and goes on, so the
// audit can report every one. senderErrs[i] non-nil (the signature did not
// recover) excludes tx i. An error is a failed read of base.
func Reexecute(base Reader, b *chain.Block, senders []common.Address, senderErrs []error) (*Reexecution, error) {
	rules, err := LoadRules(base)
	if err != nil {
		return nil, err
	}
	timeMs, _ := chain.TimeMs(b.Header) // a malformed Extra gives time 0: the audit reports the header
	blk := BlockContext{Number: b.Number(), TimeMs: timeMs}
	res := &Reexecution{Result: &Result{Writes: NewOverlay(base), Receipts: make([]*types.Receipt, len(b.Txs))}}
	res.Writes.cacheReads(true)
	defer res.Writes.cacheReads(false)
	exclude := func(i int, err error) {
		if res.Excluded == nil {
			res.Excluded = make([]error, len(b.Txs))
		}
		res.Excluded[i] = err
	}
	for i, tx := range b.Txs {
		if senderErrs != nil && senderErrs[i] != nil {
			exclude(i, senderErrs[i])
			continue
		}
		if tx.To() == nil {
			exclude(i, chain.ErrContractCreat)
			continue
		}
		out, err := ExecuteTx(res.Writes, rules, blk, tx, senders[i], res.GasUsed)
		if errors.Is(err, ErrStorage) {
			return nil, fmt.Errorf("tx %d: %w", i, err) // a failed read: no verdict on the transaction
		}
		if err != nil { // the overlay is unchanged
			exclude(i, err)
			continue
		}
		res.Receipts[i] = out.Receipt
		res.addReason(i, out)
		res.GasUsed = out.Receipt.CumulativeGasUsed
		if len(out.Receipt.Logs) > 0 {
			for j := range res.Bloom {
				res.Bloom[j] |= out.Receipt.Bloom[j]
			}
		}
	}
	if err := EndBlock(res.Writes, rules, blk); err != nil {
		return nil, fmt.Errorf("replay block %d: end of block: %w", blk.Number, err)
	}
	return res, nil
}
