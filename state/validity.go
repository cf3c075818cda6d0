package state

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/chain"
)

// This file is the one definition of block validity (DESIGN.md decision
// 5). CheckBlock holds every rule that needs no execution, CheckExecution
// every rule on what executing the block gives; the nonce rule is
// ExecuteTx's. Three callers, one set of rules:
//
//   - the FSM (DB.ApplyBlock) skips a block breaking any of them;
//   - the leader's builder (consensus.Builder) checks each block it built
//     before proposing it, so it never proposes a block the FSM skips;
//   - the audit reports each rule a stored block breaks.

// Rule names a block-validity rule. The names are stable: the audit reports
// them as its check names (docs/audit.md).
const (
	RuleLimits            = "limits"             // block size, certificates and signatures per certificate, transaction size and access list (chain.CheckBlockLimits, chain.CheckTxLimits)
	RuleLink              = "link"               // the height follows the parent's, the parent hash is its hash
	RuleTime              = "time"               // block time (ms) strictly after the parent's
	RuleHeader            = "header"             // fixed header fields, Extra layout, time in seconds, gas used and bloom as executed (chain.CheckHeaderShape)
	RuleHistoryRoot       = "history-root"       // mixHash is the history root of every earlier block hash
	RuleProposer          = "proposer"           // coinbase is a validator at that height
	RuleSeal              = "seal"               // the coinbase signed the header (chain.VerifySeal)
	RuleCertRoot          = "cert-root"          // the header's certificate root matches the certificates carried
	RuleCertificate       = "certificate"        // certificate order, height, hash, next set, signatures by validators
	RuleCertificateQuorum = "certificate-quorum" // a quorum of that height's validators signed
	RuleTxRoot            = "tx-root"            // the header's tx root matches the transactions
	RuleTxSignature       = "tx-signature"       // valid, low-S, right chain id (chain.CheckTx and sender recovery)
	RuleIncludable        = "receipt"            // every transaction's nonce is its sender's next (ExecuteTx)
	RuleReceiptsRoot      = "receipts-root"      // the header's receipts root is the executed receipts'
	RuleStateRoot         = "state-root"         // keccak(parent root ‖ executed writes) is the header's root
)

// Violation is one rule a block breaks.
type Violation struct {
	Rule string
	// Tx is the index of the transaction at fault; -1 when the block as a
	// whole breaks the rule.
	Tx int
	// Expected and Found say what the rule wants and what the block has
	// (for the audit report; either may be empty).
	Expected, Found string
	Err             error
}

func (v *Violation) Error() string {
	if v.Tx >= 0 {
		return fmt.Sprintf("%s: tx %d: %v", v.Rule, v.Tx, v.Err)
	}
	return fmt.Sprintf("%s: %v", v.Rule, v.Err)
}

func (v *Violation) Unwrap() error { return v.Err }

// Halting reports whether the violation shows this node, not the block, is
// wrong: a quorum certified a block this node does not have (ErrDiverged,
// ErrBehind). The FSM halts on it; the audit reports it as a certificate
// failure.
func (v *Violation) Halting() bool {
	return errors.Is(v.Err, ErrDiverged) || errors.Is(v.Err, ErrBehind)
}

// DecodeViolation is the violation of a block that did not decode
// (chain.DecodeBlock): its limits, or its encoding.
func DecodeViolation(err error) *Violation {
	rule := RuleHeader
	if errors.Is(err, chain.ErrBlockTooLarge) || errors.Is(err, chain.ErrTooManyCerts) {
		rule = RuleLimits
	}
	return &Violation{Rule: rule, Tx: -1, Found: "undecodable", Err: err}
}

func violation(rule string, tx int, expected, found string, err error) Violation {
	return Violation{Rule: rule, Tx: tx, Expected: expected, Found: found, Err: err}
}

// Halting errors of applying a block (store.DB.ApplyBlock) (DESIGN.md decisions 5 and 10): a block
// carries a certificate, signed by a quorum, for a block this node does not
// have. Nothing it applies from then on can be trusted.
var (
	// ErrDiverged: the certified block at a height this node applied is
	// not the one it applied.
	ErrDiverged = errors.New("node diverged from a certified block")
	// ErrBehind: a quorum certified a block above this node's head that
	// this node cannot apply (it skipped a block the others applied).
	ErrBehind = errors.New("node is behind a certified block it cannot reach")
)

// ErrStorage marks a failure of the node's own storage under a Reader or
// a ChainView (a read the disk failed): no rule a block breaks. Every
// other node reads the same state from its own disk, so a block whose
// check or execution met one is not rejected (which would part this node
// from the chain for good): the check returns the error, and the node
// halts (DESIGN.md decision 5). Implementations wrap their storage
// errors with it (store.DB).
var ErrStorage = errors.New("state storage failed")

// ErrNoGenesis is returned when a state (a data dir, a replay) has not been
// initialised from a genesis: it has no rules.
var ErrNoGenesis = errors.New("data dir has no genesis")

// ChainView is what the rules need to know of the chain a block extends.
type ChainView interface {
	// HeadNumber is the height of the last block the chain has (the
	// certificates' reference: above it a quorum certificate means this
	// node is behind).
	HeadNumber() uint64
	// ValidatorsAt is the validator set in force at height n (the one that
	// proposes and certifies block n), for n up to the head + 1.
	ValidatorsAt(n uint64) ([]common.Address, error)
	// HashAt is the hash of the chain's block n, for n up to the head;
	// ok is false when the chain does not have it.
	HashAt(n uint64) (hash common.Hash, ok bool, err error)
	// Certified reports whether a block of the chain carries a
	// certificate for block n.
	Certified(n uint64) (bool, error)
}

// Prepared is a block with the work on it that needs no chain: its seal
// checked and its senders recovered (through chain.Sender, which applies
// chain.CheckTx). The audit prepares blocks ahead on every core.
type Prepared struct {
	Block   *chain.Block
	Senders []common.Address
	// SenderErrs[i] is why tx i's sender did not recover; nil when every
	// sender did.
	SenderErrs []error
	SealErr    error
}

// Prepare checks b's seal and recovers its senders with recover (a
// chain.SenderCache's Senders, or chain.Sender on each transaction).
func Prepare(b *chain.Block, chainID uint64, recover func([]*types.Transaction) ([]common.Address, []error)) *Prepared {
	p := &Prepared{Block: b}
	p.Senders, p.SenderErrs = recover(b.Txs)
	p.SealErr = chain.VerifySeal(b.Header, chainID)
	return p
}

// CheckBlock checks every rule on p's block that needs no execution
// against its parent par and the chain view, and returns the rules it
// breaks (nil for none), in the order a reader would check them: limits,
// link, header, time, proposer, seal, roots, certificates, transactions.
func CheckBlock(p *Prepared, par Parent, view ChainView, chainID uint64) []Violation {
	b := p.Block
	h := b.Header
	n := b.Number()
	var out []Violation
	if err := chain.CheckBlockLimits(b); err != nil {
		out = append(out, violation(RuleLimits, -1, "", "", err))
	}
	if !h.Number.IsUint64() || n != par.Number+1 {
		out = append(out, violation(RuleLink, -1, fmt.Sprintf("height %d", par.Number+1), fmt.Sprintf("height %v", h.Number),
			fmt.Errorf("height %v does not follow the parent's %d", h.Number, par.Number)))
	}
	if h.ParentHash != par.Hash {
		out = append(out, violation(RuleLink, -1, par.Hash.Hex(), h.ParentHash.Hex(),
			fmt.Errorf("parent %s is not the hash of block %d, %s", h.ParentHash, par.Number, par.Hash)))
	}
	if err := chain.CheckHeaderShape(h); err != nil {
		out = append(out, violation(RuleHeader, -1, "Tally's fixed London header", "", err))
	}
	if timeMs, err := chain.TimeMs(h); err == nil && timeMs <= par.TimeMs {
		out = append(out, violation(RuleTime, -1, fmt.Sprintf("after %d ms", par.TimeMs), fmt.Sprintf("%d ms", timeMs),
			fmt.Errorf("block time %d ms does not go past the parent's %d ms", timeMs, par.TimeMs)))
	}
	vals, err := view.ValidatorsAt(n)
	switch {
	case err != nil:
		out = append(out, violation(RuleProposer, -1, "", "", fmt.Errorf("validators at height %d: %w", n, err)))
	case !containsAddr(vals, h.Coinbase):
		out = append(out, violation(RuleProposer, -1, fmt.Sprintf("one of the %d validators", len(vals)), h.Coinbase.Hex(),
			fmt.Errorf("proposer %s is not a validator at height %d", h.Coinbase, n)))
	}
	if p.SealErr != nil {
		out = append(out, violation(RuleSeal, -1, "signed by "+h.Coinbase.Hex(), "invalid seal", p.SealErr))
	}
	if root := chain.TxRoot(b.Txs); root != h.TxHash {
		out = append(out, violation(RuleTxRoot, -1, h.TxHash.Hex(), root.Hex(), fmt.Errorf("tx root %s, header says %s", root, h.TxHash)))
	}
	if par.History != nil {
		if root := par.History.Root(); root != h.MixDigest {
			out = append(out, violation(RuleHistoryRoot, -1, root.Hex(), h.MixDigest.Hex(),
				fmt.Errorf("history root of blocks 0..%d is %s, header says %s", par.Number, root, h.MixDigest)))
		}
	}
	claimed, err := chain.HeaderCertRoot(h)
	if root := chain.CertRoot(b.Certs); err != nil || root != claimed {
		out = append(out, violation(RuleCertRoot, -1, claimed.Hex(), root.Hex(),
			fmt.Errorf("certificate root %s, header says %s", root, claimed)))
	}
	out = append(out, checkCerts(b, view, chainID)...)
	for i, err := range p.SenderErrs {
		if err == nil {
			continue
		}
		rule := RuleTxSignature
		if errors.Is(err, chain.ErrTxTooLarge) || errors.Is(err, chain.ErrAccessListTooLarge) {
			rule = RuleLimits
		}
		out = append(out, violation(rule, i, "", "", fmt.Errorf("tx %s: %w", b.Txs[i].Hash(), err)))
	}
	return out
}

// checkCerts checks the certificates b carries: heights strictly
// increasing and below b, not certified before, each valid (CheckCert).
func checkCerts(b *chain.Block, view ChainView, chainID uint64) []Violation {
	var out []Violation
	var prev uint64
	for i, c := range b.Certs {
		if i > 0 && c.Height <= prev {
			out = append(out, violation(RuleCertificate, -1, fmt.Sprintf("height above %d", prev), fmt.Sprint(c.Height),
				fmt.Errorf("certificate %d for block %d not after %d", i, c.Height, prev)))
		}
		prev = c.Height
		if c.Height >= b.Number() {
			out = append(out, violation(RuleCertificate, -1, fmt.Sprintf("height below %d", b.Number()), fmt.Sprint(c.Height),
				fmt.Errorf("certificate %d for block %d in block %d", i, c.Height, b.Number())))
			continue
		}
		if err := CheckCert(c, view, chainID); err != nil {
			rule := RuleCertificate
			if errors.Is(err, chain.ErrCertQuorum) {
				rule = RuleCertificateQuorum
			}
			out = append(out, violation(rule, -1, "", "", fmt.Errorf("certificate %d: %w", i, err)))
			continue
		}
		switch done, err := view.Certified(c.Height); {
		case err != nil:
			out = append(out, violation(RuleCertificate, -1, "", "", fmt.Errorf("certificate %d: %w", i, err)))
		case done:
			out = append(out, violation(RuleCertificate, -1, "a height not certified before", fmt.Sprint(c.Height),
				fmt.Errorf("certificate %d: block %d already certified", i, c.Height)))
		}
	}
	return out
}

// CheckCert checks a certificate against a chain: the signatures
// (chain.VerifyCertificate against the set in force at its height), the
// block hash at its height, and Next against the set after it. A quorum
// certifying a block the chain does not have returns ErrDiverged or
// ErrBehind; any other failure is an ordinary error.
func CheckCert(c *chain.Certificate, view ChainView, chainID uint64) error {
	head := view.HeadNumber()
	at := min(c.Height, head+1) // above the head, the best knowledge is the next set
	vals, err := view.ValidatorsAt(at)
	if err != nil {
		return err
	}
	if err := chain.VerifyCertificate(c, chainID, vals); err != nil {
		return err
	}
	if c.Height > head {
		return fmt.Errorf("%w: block %d (%s) certified, head is %d", ErrBehind, c.Height, c.Hash, head)
	}
	hash, ok, err := view.HashAt(c.Height)
	if err != nil {
		return fmt.Errorf("certificate for block %d: %w", c.Height, err)
	}
	if !ok {
		return fmt.Errorf("certificate for block %d: the chain has no block %d", c.Height, c.Height)
	}
	if hash != c.Hash {
		return fmt.Errorf("%w: block %d certified as %s, the chain has %s", ErrDiverged, c.Height, c.Hash, hash)
	}
	next, err := view.ValidatorsAt(c.Height + 1)
	if err != nil {
		return err
	}
	if h := chain.ValidatorSetHash(next); h != c.Next {
		return fmt.Errorf("certificate for block %d: next validator set %s, want %s", c.Height, c.Next, h)
	}
	return nil
}

// CheckExecution checks the header's commitments against what executing
// the block on the state with root parentRoot gave (res, every
// transaction included): state root, receipts root, gas used and bloom.
func CheckExecution(h *types.Header, parentRoot common.Hash, res *Result) []Violation {
	var out []Violation
	if root := res.Writes.Root(parentRoot); root != h.Root {
		out = append(out, violation(RuleStateRoot, -1, root.Hex(), h.Root.Hex(), fmt.Errorf("state root %s, header says %s", root, h.Root)))
	}
	rroot, err := chain.ReceiptRoot(res.Receipts)
	if err != nil || rroot != h.ReceiptHash {
		out = append(out, violation(RuleReceiptsRoot, -1, rroot.Hex(), h.ReceiptHash.Hex(), fmt.Errorf("receipt root %s, header says %s (%v)", rroot, h.ReceiptHash, err)))
	}
	if res.GasUsed != h.GasUsed {
		out = append(out, violation(RuleHeader, -1, fmt.Sprint(res.GasUsed), fmt.Sprint(h.GasUsed), fmt.Errorf("gas used %d, header says %d", res.GasUsed, h.GasUsed)))
	}
	if res.Bloom != h.Bloom {
		out = append(out, violation(RuleHeader, -1, "the executed logs bloom", "another bloom", errors.New("logs bloom differs from the executed one")))
	}
	return out
}

func containsAddr(list []common.Address, a common.Address) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}
