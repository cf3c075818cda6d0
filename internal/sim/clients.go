package sim

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// FaultMintAgain: a mint reusing a bank reference already minted, which
// must not mint twice. The attackers' sends are in attack.go.
const FaultMintAgain Fault = "mint-again"

// simAccounts is how many dev accounts send transfers.
const simAccounts = 8

// resendAfter is how long a client waits for its transaction's receipt
// before sending it again (to whichever node leads then), as a wallet does.
const resendAfter = 3 * time.Second

// account is one client key with at most one nonce in flight: pending
// holds every transaction it signed for that nonce (more than one after a
// conflicting send); the nonce is settled once the chain used it.
type account struct {
	key     *crypto.PrivateKey
	addr    common.Address
	next    uint64
	pending []*types.Transaction
	sentAt  time.Time
	// busy is set while a send is under way (admit.go); acked once a
	// node acknowledged pending[0]: the wallet never sends it again.
	busy, acked bool
}

// clients are the wallets and the bank sending to the cluster. They send
// as a wallet with failover does, to any node, through the node's own
// admission path (admit.go).
type clients struct {
	s     *Sim
	calls *calls
	accts []*account
	bank  *account
	// refOf is the bank reference of each mint sent; refs those used.
	refOf map[common.Hash]common.Hash
	refs  []common.Hash
	sent  []*types.Transaction // every transaction admitted somewhere
	// extra are more accounts whose nonces must all be applied (the
	// governance members').
	extra []*account
	// atk are the attackers (attack.go).
	atk *attacker
}

// all is every account that sends, the bank's first.
func (c *clients) all() []*account {
	return append(append([]*account{c.bank}, c.accts...), c.extra...)
}

func newClients(s *Sim) (*clients, error) {
	c := &clients{s: s, calls: newCalls(s), refOf: map[common.Hash]common.Hash{}}
	for i := 0; i < simAccounts; i++ {
		k, err := genesis.DevKey(uint32(i))
		if err != nil {
			return nil, err
		}
		c.accts = append(c.accts, &account{key: k, addr: k.Address()})
	}
	k, err := genesis.DevKey(genesis.DevBankAIndex)
	if err != nil {
		return nil, err
	}
	c.bank = &account{key: k, addr: k.Address()}
	c.atk = newAttacker(c, s.cfg.Seed)
	c.calls.check = c.atk.bannedApplied
	return c, nil
}

// settled drops a's pending nonce once the canonical chain used it.
func (c *clients) settled(a *account) bool {
	if len(a.pending) == 0 {
		return true
	}
	if _, ok := c.s.inv.nonces[senderNonce{a.addr, a.pending[0].Nonce()}]; ok {
		a.pending = nil
		return true
	}
	return false
}

// op is one client operation, chosen by the seed: an honest client's
// transfer or mint, a JSON-RPC batch (clients_batch.go) or an attack
// (attack.go).
func (c *clients) op() {
	s := c.s
	r := s.rng.IntN(100)
	switch {
	case r < 66:
		c.transfer(c.accts[s.rng.IntN(len(c.accts))])
	case r < 76:
		c.mint()
	case r < 82:
		c.batch()
	default:
		c.atk.op()
	}
}

// transfer sends a's next transfer, or re-sends its pending one when its
// receipt is overdue.
func (c *clients) transfer(a *account) {
	if a.busy {
		return
	}
	if !c.settled(a) {
		c.resend(a)
		return
	}
	c.syncNonce(a)
	to := c.accts[c.s.rng.IntN(len(c.accts))].addr
	tx, err := wallet.SignTransfer(a.key, c.s.g.ChainIDBig(), a.next, to, big.NewInt(1+c.s.rng.Int64N(1000)), c.s.rng.IntN(4) == 0)
	if err != nil {
		panic(err) // the inputs are ours: a failure is a bug of the simulator
	}
	c.send(a, tx, "transfer")
}

// mint has the bank mint to an account under a fresh bank reference, or
// (FaultMintAgain) under one it used before, which must not mint twice.
func (c *clients) mint() {
	a := c.bank
	if a.busy {
		return
	}
	if !c.settled(a) {
		c.resend(a)
		return
	}
	c.syncNonce(a)
	var ref common.Hash
	if len(c.refs) > 0 && c.s.rng.IntN(3) == 0 {
		ref = c.refs[c.s.rng.IntN(len(c.refs))]
		c.s.count(FaultMintAgain)
	} else {
		for i := 0; i < len(ref); i += 8 {
			binary.BigEndian.PutUint64(ref[i:], c.s.rng.Uint64())
		}
		c.refs = append(c.refs, ref)
	}
	to := c.accts[c.s.rng.IntN(len(c.accts))].addr
	op, err := wallet.MintOp(0, to, big.NewInt(1+c.s.rng.Int64N(1e6)), ref)
	if err != nil {
		panic(err)
	}
	tx, err := wallet.SignOp(a.key, c.s.g.ChainIDBig(), a.next, op)
	if err != nil {
		panic(err)
	}
	c.refOf[tx.Hash()] = ref
	c.send(a, tx, "mint")
}

// send submits a's new transaction for its next nonce.
func (c *clients) send(a *account, tx *types.Transaction, what string) {
	c.sendThen(a, tx, what, nil)
}

// sendThen is send, calling then (if not nil) once tx is a's pending
// transaction: acknowledged, or unanswered (the wallet re-sends it).
func (c *clients) sendThen(a *account, tx *types.Transaction, what string, then func()) {
	raw, _ := tx.MarshalBinary()
	a.busy = true
	c.calls.send(raw, what, -1, func(sn int, err error) {
		if c.answered(a, tx, what, sn, err) && then != nil {
			then()
		}
	})
}

// answered takes the verdict err of node sn on tx, a's new transaction
// for its next nonce, as the wallet does; true if tx is now a's pending
// transaction (acknowledged, or unanswered: the wallet re-sends it).
func (c *clients) answered(a *account, tx *types.Transaction, what string, sn int, err error) bool {
	a.busy = false
	c.s.record("client %s %s nonce %d to n%d: %v", what, a.addr.Hex()[:8], tx.Nonce(), sn, err)
	if err != nil && !wallet.Unavailable(err) {
		return false // refused: the nonce is still the wallet's next
	}
	a.pending = []*types.Transaction{tx}
	a.acked = err == nil
	a.sentAt = time.Now()
	a.next++
	if a.acked {
		c.sent = append(c.sent, tx)
	}
	return true
}

// resend sends a's pending transaction again once its receipt is overdue,
// unless a node acknowledged it: a wallet that was told its transaction
// is admitted has no reason to send it again (and must not need to).
func (c *clients) resend(a *account) {
	if a.acked || a.busy || time.Since(a.sentAt) < resendAfter {
		return
	}
	a.sentAt = time.Now()
	a.busy = true
	tx := a.pending[0]
	raw, _ := tx.MarshalBinary()
	c.calls.send(raw, "resend", -1, func(sn int, err error) {
		a.busy = false
		c.s.record("client resend %s nonce %d to n%d: %v", a.addr.Hex()[:8], tx.Nonce(), sn, err)
		if err == nil && len(a.pending) > 0 && a.pending[0] == tx {
			a.acked = true
			c.sent = append(c.sent, tx)
		}
	})
}

// step re-sends overdue transactions (the quiet phase); true if it sent.
func (c *clients) step() bool {
	sent := false
	for _, a := range c.all() {
		if !c.settled(a) && !a.acked && !a.busy && time.Since(a.sentAt) >= resendAfter {
			c.resend(a)
			sent = true
		}
	}
	return sent
}

// quiet reports whether every account's nonces are settled and no send
// is under way.
func (c *clients) quiet() bool {
	if c.calls.busy() {
		return false
	}
	for _, a := range c.all() {
		if !c.settled(a) {
			return false
		}
	}
	return true
}

// allReceipted is the end's check that every client nonce was used.
func (c *clients) allReceipted() error {
	for _, a := range c.all() {
		if !c.settled(a) {
			return fmt.Errorf("invariant client-done: %s nonce %d never applied (%d transactions for it sent)", a.addr, a.pending[0].Nonce(), len(a.pending))
		}
	}
	return nil
}
