package sim

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/holiman/uint256"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/wallet"
)

// Attackers send what a real attacker sends to a node's
// eth_sendRawTransaction, alongside the honest clients and during the
// faults: bytes that are no transaction, transactions over the size
// limit, signed for another chain, of a type Tally does not take, with a
// signature no key made, a transaction the node has applied, and a second
// transaction for a pending nonce. Each goes to one node (no failover:
// the verdict checked is that node's), and each answer is checked against
// what a real node guarantees, worded as go-ethereum words it (client
// libraries classify errors by these words):
//
//   - a transaction any node refuses (attackKinds) is refused with
//     go-ethereum's words and JSON-RPC code, never as an unavailability
//     (a wallet would send it on to every other node), and leaves every
//     node's pool and sender cache without it and the chain without it
//     for ever (banned, checked after every step);
//   - a replay to a node that applied the transaction, or whose leader
//     had, is refused "already known" or "nonce too low" and not pooled
//     again (never admitted: a follower tells the leader's "applied" from
//     its "already known", node.TestForwardOfAppliedTx), and the chain
//     holds it once (invariant once);
//   - a conflicting nonce sent to a node that does not lead is refused
//     with a nonce verdict ("replacement transaction underpriced", "nonce
//     too low", …) and not pooled there, or admitted, when the chain
//     applies one of the two (acked-kept).
//
// A halted node answers everything "node halted", and a node that crashed
// before answering drops the connection: neither is a verdict, and
// neither is checked.
const (
	// FaultReplay: a receipted transaction sent again (to a node that
	// applied it: refused "already known" or "nonce too low").
	FaultReplay Fault = "replay"
	// FaultMalformed: bytes that are no transaction: an encoding cut
	// short, with bytes after it, with its list's length changed, or with
	// a type byte no transaction has.
	FaultMalformed Fault = "malformed"
	// FaultOversized: a signed transaction over chain.MaxTxSize.
	FaultOversized Fault = "oversized"
	// FaultConflict: a second transaction for an account's pending nonce,
	// sent to a node that does not lead.
	FaultConflict Fault = "conflict"
	// FaultWrongChain: a transaction signed for another chain id (one
	// replayed from another network), or a legacy one with no chain id.
	FaultWrongChain Fault = "wrong-chain"
	// FaultBadSignature: a signature no key made: r zero or over the
	// curve's order, s over half the order (the high-S twin of a valid
	// signature: a malleability attack) or over the order, a recovery id
	// other than 0 and 1.
	FaultBadSignature Fault = "bad-signature"
	// FaultTxType: a well-formed signed transaction of a type Tally does
	// not take (EIP-4844 blob, EIP-7702 set-code).
	FaultTxType Fault = "tx-type"
)

// attackWeights are the relative frequencies of the attacks.
var attackWeights = []struct {
	f Fault
	w int
}{
	{FaultMalformed, 3}, {FaultOversized, 2}, {FaultWrongChain, 2}, {FaultBadSignature, 3},
	{FaultTxType, 1}, {FaultReplay, 3}, {FaultConflict, 4},
}

// secp256k1N is the order of the curve's group.
var secp256k1N, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)

// refusal is the answer a real node gives to an attacker's transaction:
// a message containing one of words (go-ethereum's), with code when it is
// not 0.
type refusal struct {
	code  int
	words []string
}

// attacker is the attacking clients. Its choices come from its own
// random stream, so that the mix of attacks does not move the scheduler's
// and the honest clients' choices.
type attacker struct {
	c   *clients
	rng *rand.Rand
	// banned holds the transactions refused as invalid, by the attack
	// that sent them: no node may ever hold or apply one.
	banned map[common.Hash]Fault
}

func newAttacker(c *clients, seed uint64) *attacker {
	return &attacker{c: c, rng: rand.New(rand.NewPCG(seed, 0xa77ac)), banned: map[common.Hash]Fault{}}
}

// op sends one attack, chosen by weight.
func (at *attacker) op() {
	total := 0
	for _, aw := range attackWeights {
		total += aw.w
	}
	r := at.rng.IntN(total)
	var f Fault
	for _, aw := range attackWeights {
		if f = aw.f; r < aw.w {
			break
		}
		r -= aw.w
	}
	switch f {
	case FaultReplay:
		at.replay()
	case FaultConflict:
		at.conflict()
	default:
		raw, want := at.invalid(f)
		if raw == nil {
			return
		}
		up := at.c.s.upNodes()
		if len(up) == 0 {
			return
		}
		at.refuse(f, raw, up[at.rng.IntN(len(up))], want)
	}
}

// invalid makes a transaction of attack f that every node refuses, and
// the refusal expected; nil if there is none to make now.
func (at *attacker) invalid(f Fault) ([]byte, refusal) {
	switch f {
	case FaultMalformed:
		return at.malformed()
	case FaultOversized:
		return at.oversized()
	case FaultWrongChain:
		return at.wrongChain()
	case FaultBadSignature:
		return at.badSignature()
	case FaultTxType:
		return at.txType()
	}
	panic("sim: no invalid transaction of kind " + string(f))
}

// refuse sends raw (attack f, which every node refuses) to node and
// checks the answer and the nodes afterwards.
func (at *attacker) refuse(f Fault, raw []byte, node int, want refusal) {
	s := at.c.s
	s.count(f)
	at.c.calls.sendOnce(raw, string(f), node, func(it *item) error {
		s.record("attack %s (%d bytes) to n%d: %v", f, len(raw), node, it.err)
		return at.checkRefused(f, it, want)
	})
}

// checkRefused checks an invalid transaction's verdict: refused as want
// says, and held by no node.
func (at *attacker) checkRefused(f Fault, it *item, want refusal) error {
	s := at.c.s
	if it.err == nil {
		return fmt.Errorf("invariant refused: n%d admitted a %s transaction (%x...)", it.node, f, it.raw[:min(len(it.raw), 16)])
	}
	if noVerdict(it.err) {
		return nil
	}
	if err := want.check(it.err); err != nil {
		return fmt.Errorf("invariant refused: n%d answered a %s transaction: %w", it.node, f, err)
	}
	if it.tx != nil {
		h := it.tx.Hash()
		at.banned[h] = f
		for _, sn := range s.nodes {
			if !sn.up {
				continue
			}
			if _, _, pooled := sn.pool.Get(h); pooled {
				return fmt.Errorf("invariant refused: n%d refused a %s transaction (%v) but n%d's pool holds it", it.node, f, it.err, sn.id)
			}
			if sn.senders.Contains(h) {
				return fmt.Errorf("invariant refused: n%d refused a %s transaction (%v) but n%d's sender cache keeps it", it.node, f, it.err, sn.id)
			}
		}
	}
	s.res.Refused++
	return nil
}

// noVerdict reports an answer that says nothing of the transaction: the
// node is halted, its process went before it answered, or its disk
// failed a read it needed (state.ErrStorage; a read-error fault).
func noVerdict(err error) bool {
	return errors.Is(err, errConnRefused) || errors.Is(err, errConnLost) || errors.Is(err, wallet.ErrUnavailable) || strings.HasPrefix(err.Error(), "node halted") ||
		strings.Contains(err.Error(), state.ErrStorage.Error())
}

// check returns why err is not the refusal r describes.
func (r refusal) check(err error) error {
	msg := err.Error()
	if wallet.Unavailable(err) {
		return fmt.Errorf("%q is an unavailability (a wallet sends it on to every node), want a refusal with %q", msg, r.words)
	}
	if !slices.ContainsFunc(r.words, func(w string) bool { return strings.Contains(msg, w) }) {
		return fmt.Errorf("%q, want one with %q", msg, r.words)
	}
	if r.code != 0 {
		var coded interface{ ErrorCode() int }
		if !errors.As(err, &coded) || coded.ErrorCode() != r.code {
			return fmt.Errorf("%q with code %v, want code %d", msg, coded, r.code)
		}
	}
	return nil
}

// bannedApplied is checked after every step: no transaction refused as
// invalid is in the chain.
func (at *attacker) bannedApplied() error {
	for h, f := range at.banned {
		if height, ok := at.c.s.inv.txAt[h]; ok {
			return fmt.Errorf("invariant refused: the %s transaction %s, refused, is in the block at height %d", f, h, height)
		}
	}
	return nil
}

// account picks one of the honest clients' accounts (its key signs what
// an attacker with a copy of it sends).
func (at *attacker) account() *account { return at.c.accts[at.rng.IntN(len(at.c.accts))] }

// transfer signs a's next transfer (an EIP-1559 one) for chainID.
func (at *attacker) transfer(a *account, chainID *big.Int, legacy bool) *types.Transaction {
	to := at.account().addr
	tx, err := wallet.SignTransfer(a.key, chainID, a.next, to, big.NewInt(1+at.rng.Int64N(1000)), legacy)
	if err != nil {
		panic(err) // the inputs are ours: a failure is a bug of the simulator
	}
	return tx
}

// conflicting signs a second transfer of a for the nonce of tx, to a
// drawn recipient and amount. Signing is deterministic: had the draw
// matched tx's recipient and amount, it would be tx itself, a re-send
// ("already known") and no conflict (seeds 369 and 83); it then sends one
// unit more, without a draw, so that other seeds keep their path. Both
// the conflict attacker and a batch's twin send one.
func (at *attacker) conflicting(a *account, tx *types.Transaction) *types.Transaction {
	chainID := at.c.s.g.ChainIDBig()
	to, amount := at.account().addr, big.NewInt(1+at.rng.Int64N(1000))
	out, err := wallet.SignTransfer(a.key, chainID, tx.Nonce(), to, amount, false)
	if err == nil && out.Hash() == tx.Hash() {
		out, err = wallet.SignTransfer(a.key, chainID, tx.Nonce(), to, amount.Add(amount, big.NewInt(1)), false)
	}
	if err != nil {
		panic(err) // the inputs are ours: a failure is a bug of the simulator
	}
	return out
}

// malformed sends bytes that are no transaction in its canonical
// encoding, as a broken or hostile client does: a signed transaction cut
// short (its RLP list announces more than follows), with a byte after it,
// with its list header's length changed, or with a type byte no
// transaction has. The node's answer is invalid params (-32602) with
// go-ethereum's decoding error, which is what go-ethereum answers.
func (at *attacker) malformed() ([]byte, refusal) {
	raw, _ := at.transfer(at.account(), at.c.s.g.ChainIDBig(), false).MarshalBinary()
	switch at.rng.IntN(4) {
	case 0:
		raw = raw[:1+at.rng.IntN(len(raw)-1)]
	case 1:
		raw = append(raw, byte(at.rng.IntN(256)))
	case 2:
		// raw[1] is the list header of the typed transaction's payload
		// (0xf8: one length byte follows), raw[2] its length.
		if raw[1] != 0xf8 {
			panic(fmt.Sprintf("sim: a transfer's list header is %#x", raw[1]))
		}
		raw[2] ^= byte(1 + at.rng.IntN(255))
	default:
		raw[0] = byte(0x05 + at.rng.IntN(0x7f-0x05)) // no transaction type
	}
	gerr := new(types.Transaction).UnmarshalBinary(raw)
	if gerr == nil {
		panic(fmt.Sprintf("sim: go-ethereum decodes the malformed %x", raw))
	}
	return raw, refusal{code: rpc.CodeInvalidParams, words: []string{gerr.Error()}}
}

// oversized makes a signed transaction above chain.MaxTxSize, the node's
// limit: go-ethereum's pool answers "oversized data".
func (at *attacker) oversized() ([]byte, refusal) {
	a := at.account()
	to := at.account().addr
	data := make([]byte, chain.MaxTxSize+at.rng.IntN(1024))
	tx, err := types.SignNewTx(a.key.ECDSA(), chain.NewSigner(at.c.s.g.ChainIDBig()), &types.DynamicFeeTx{
		ChainID: at.c.s.g.ChainIDBig(), Nonce: a.next, Gas: 1 << 24, To: &to, Data: data, GasFeeCap: new(big.Int), GasTipCap: new(big.Int),
	})
	if err != nil {
		panic(err)
	}
	raw, _ := tx.MarshalBinary()
	return raw, refusal{code: rpc.CodeServerError, words: []string{"oversized data"}}
}

// wrongChain makes a funded account's next transfer signed for another
// chain id, as a transaction replayed from another network is, or a
// legacy transaction with no chain id at all (go-ethereum: "invalid chain
// id for signer"; "only replay-protected (EIP-155) transactions allowed
// over RPC").
func (at *attacker) wrongChain() ([]byte, refusal) {
	a := at.account()
	if at.rng.IntN(4) == 0 {
		to := at.account().addr
		tx, err := types.SignNewTx(a.key.ECDSA(), types.HomesteadSigner{}, &types.LegacyTx{
			Nonce: a.next, GasPrice: new(big.Int), Gas: chain.GasPerTransfer, To: &to, Value: big.NewInt(1),
		})
		if err != nil {
			panic(err)
		}
		raw, _ := tx.MarshalBinary()
		return raw, refusal{code: rpc.CodeServerError, words: []string{"EIP-155"}}
	}
	other := new(big.Int).Add(at.c.s.g.ChainIDBig(), big.NewInt(1+at.rng.Int64N(1000)))
	raw, _ := at.transfer(a, other, at.rng.IntN(2) == 0).MarshalBinary()
	return raw, refusal{code: rpc.CodeServerError, words: []string{"invalid chain id for signer"}}
}

// badSignature makes a funded account's next transfer with a signature
// no key made, its fields set directly as an attacker's encoder does (no
// signer checks them): go-ethereum's pool answers "invalid sender".
func (at *attacker) badSignature() ([]byte, refusal) {
	tx := at.transfer(at.account(), at.c.s.g.ChainIDBig(), false)
	v, r, s := tx.RawSignatureValues()
	v, r, s = new(big.Int).Set(v), new(big.Int).Set(r), new(big.Int).Set(s)
	switch at.rng.IntN(6) {
	case 0:
		r.SetInt64(0)
	case 1:
		r.Add(secp256k1N, big.NewInt(at.rng.Int64N(1<<20)))
	case 2:
		// The same signature's other form: n−s with the recovery id
		// flipped recovers the same key (a malleated copy of a valid
		// transaction, with another hash).
		s.Sub(secp256k1N, s)
		v.Xor(v, big.NewInt(1))
	case 3:
		s.Add(secp256k1N, big.NewInt(at.rng.Int64N(1<<20)))
	case 4:
		s.SetInt64(0)
	default:
		v.SetInt64(2 + at.rng.Int64N(254))
	}
	inner := &types.DynamicFeeTx{
		ChainID: tx.ChainId(), Nonce: tx.Nonce(), GasTipCap: tx.GasTipCap(), GasFeeCap: tx.GasFeeCap(), Gas: tx.Gas(),
		To: tx.To(), Value: tx.Value(), Data: tx.Data(), V: v, R: r, S: s,
	}
	raw, _ := types.NewTx(inner).MarshalBinary()
	return raw, refusal{code: rpc.CodeServerError, words: []string{"invalid sender"}}
}

// txType makes a funded account's next transaction signed as a type
// Tally does not take: an EIP-4844 blob transaction (without its
// sidecar, as a block carries it) or an EIP-7702 set-code one; go-ethereum's
// answer when its pool does not take a type is "transaction type not
// supported".
func (at *attacker) txType() ([]byte, refusal) {
	a := at.account()
	id := at.c.s.g.ChainIDBig()
	cid := uint256.MustFromBig(id)
	to := at.account().addr
	var inner types.TxData
	if at.rng.IntN(2) == 0 {
		var h common.Hash
		h[0] = 0x01 // a KZG commitment's versioned hash
		inner = &types.BlobTx{ChainID: cid, Nonce: a.next, GasTipCap: new(uint256.Int), GasFeeCap: new(uint256.Int), Gas: chain.GasPerTransfer,
			To: to, Value: uint256.NewInt(1), BlobFeeCap: new(uint256.Int), BlobHashes: []common.Hash{h}}
	} else {
		inner = &types.SetCodeTx{ChainID: cid, Nonce: a.next, GasTipCap: new(uint256.Int), GasFeeCap: new(uint256.Int), Gas: chain.GasPerTransfer,
			To: to, Value: uint256.NewInt(1), AuthList: []types.SetCodeAuthorization{{ChainID: *cid, Address: to, Nonce: a.next + 1}}}
	}
	tx, err := types.SignNewTx(a.key.ECDSA(), types.LatestSignerForChainID(id), inner)
	if err != nil {
		panic(err)
	}
	raw, _ := tx.MarshalBinary()
	return raw, refusal{code: rpc.CodeServerError, words: []string{"transaction type not supported"}}
}

// replay sends a receipted transaction again to a node, as a client that
// replays what it saw on the chain does. A node that applied it, or
// whose leader had (the one leading at the send, still leading in the
// same term at the answer: the follower forwards to it), must refuse it
// as go-ethereum does ("already known", or "nonce too low") without
// pooling it again; only when neither had applied it (a node and a
// leader both behind the chain) may it be taken, and the chain must not
// apply it twice (invariant once).
func (at *attacker) replay() {
	s := at.c.s
	var done []*types.Transaction
	for _, tx := range at.c.sent {
		if _, ok := s.inv.txAt[tx.Hash()]; ok {
			done = append(done, tx)
		}
	}
	up := s.upNodes()
	if len(done) == 0 || len(up) == 0 {
		return
	}
	tx := done[at.rng.IntN(len(done))]
	sn := s.nodes[up[at.rng.IntN(len(up))]]
	applied, err := sn.db.HasTx(tx.Hash())
	if err != nil {
		return // a failing disk: the node is about to halt
	}
	var leaderApplied bool
	var leaderID int
	var leaderTerm uint64
	if l := s.leader(); l != nil {
		if leaderApplied, err = l.db.HasTx(tx.Hash()); err != nil {
			return
		}
		leaderID, leaderTerm = l.id, currentTerm(l.engine.Raft)
	}
	// A node applies a block before its pool lets go of the block's
	// transactions (the FSM's callback): pooled at the send, the replay
	// found it there; only one pooled after being refused was pooled again.
	_, _, pooledBefore := sn.pool.Get(tx.Hash())
	s.count(FaultReplay)
	raw, _ := tx.MarshalBinary()
	want := refusal{words: []string{"already known", "nonce too low"}}
	at.c.calls.sendOnce(raw, string(FaultReplay), sn.id, func(it *item) error {
		s.record("attack replay %s to n%d (applied there: %v, by its leader: %v): %v", tx.Hash().TerminalString(), sn.id, applied, leaderApplied, it.err)
		l := s.leader()
		sameLeader := l != nil && l.id == leaderID && currentTerm(l.engine.Raft) == leaderTerm
		if !applied && !(leaderApplied && sameLeader) {
			return nil // neither the node nor its leader had applied it: it may be taken
		}
		if it.err == nil {
			return fmt.Errorf("invariant refused: n%d admitted the replay of tx %s, applied by %s", sn.id, tx.Hash(), appliedBy(sn.id, applied, leaderID))
		}
		if noVerdict(it.err) || wallet.Unavailable(it.err) {
			return nil // no leader answered
		}
		if err := want.check(it.err); err != nil {
			return fmt.Errorf("invariant refused: n%d answered the replay of tx %s, applied by %s: %w", sn.id, tx.Hash(), appliedBy(sn.id, applied, leaderID), err)
		}
		if sn.up && !pooledBefore {
			if _, _, pooled := sn.pool.Get(tx.Hash()); pooled {
				return fmt.Errorf("invariant refused: n%d refused the replay of tx %s (%v) but pooled it again", sn.id, tx.Hash(), it.err)
			}
		}
		s.res.Refused++
		return nil
	})
}

// appliedBy names who had applied a replayed transaction at its send:
// node itself (applied) or else the leader it forwards to.
func appliedBy(node int, applied bool, leader int) string {
	if applied {
		return fmt.Sprintf("n%d itself", node)
	}
	return fmt.Sprintf("its leader n%d", leader)
}

// nonceVerdicts are the refusals of a transaction for a nonce another
// transaction of its sender has taken, in go-ethereum's words: pending
// ("replacement transaction underpriced", Tally never replaces one),
// applied ("nonce too low", or "already known" for one that is the
// applied one), or behind a gap ("nonce too high", "missing nonce").
var nonceVerdicts = []string{"replacement transaction underpriced", "nonce too low", "already known", "nonce too high", "missing nonce"}

// conflict signs a second transaction for an account's pending nonce (a
// different recipient) and sends it to a node that does not lead (the
// first went through the wallet, which the leader answered or forwarded
// to): refused with a nonce verdict and not pooled there, or admitted
// (a leader that did not hold the first yet), when the chain applies one
// of the two (invariants once and acked-kept).
func (at *attacker) conflict() {
	c, s := at.c, at.c.s
	var cands []*account
	for _, a := range c.accts {
		if !c.settled(a) {
			cands = append(cands, a)
		}
	}
	var others []int
	for _, i := range s.upNodes() {
		if l := s.leader(); l == nil || l.id != i {
			others = append(others, i)
		}
	}
	if len(cands) == 0 || len(others) == 0 {
		return
	}
	a := cands[at.rng.IntN(len(cands))]
	n := a.pending[0].Nonce()
	tx := at.conflicting(a, a.pending[0])
	node := others[at.rng.IntN(len(others))]
	s.count(FaultConflict)
	raw, _ := tx.MarshalBinary()
	want := refusal{words: nonceVerdicts}
	c.calls.sendOnce(raw, string(FaultConflict), node, func(it *item) error {
		s.record("attack conflict %s nonce %d to n%d: %v", a.addr.Hex()[:8], n, node, it.err)
		if it.err == nil {
			if len(a.pending) > 0 && a.pending[0].Nonce() == n {
				a.pending = append(a.pending, tx)
			}
			return nil
		}
		if noVerdict(it.err) || wallet.Unavailable(it.err) {
			return nil // no leader to forward to, or not replicated: no verdict
		}
		if err := want.check(it.err); err != nil {
			return fmt.Errorf("invariant refused: n%d answered a conflicting transaction for nonce %d of %s: %w", node, n, a.addr, err)
		}
		// Pooled by the node that refused it, and by no other: not a
		// copy the leader relayed to it before another leader refused it.
		if holders := holding(s, tx.Hash()); len(holders) == 1 && holders[0] == node {
			return fmt.Errorf("invariant refused: n%d refused a conflicting transaction (%v) but pooled it", node, it.err)
		}
		s.res.Refused++
		return nil
	})
}

// holding returns the up nodes whose pools hold the transaction h.
func holding(s *Sim, h common.Hash) []int {
	var out []int
	for _, sn := range s.nodes {
		if !sn.up {
			continue
		}
		if _, _, pooled := sn.pool.Get(h); pooled {
			out = append(out, sn.id)
		}
	}
	return out
}
