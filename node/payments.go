package node

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

// keeperCheck is how often the leading node looks for held payments due
// to expire (docs/payments.md): an expiry returns its money at most about
// this long plus a block after its time.
const keeperCheck = 250 * time.Millisecond

// keeperSubmitTimeout bounds one submission of the keeper's transaction.
const keeperSubmitTimeout = 5 * time.Second

// keeper sends the Confirmations contract's expirePayments while this
// node leads and a held payment is due: an expiry runs in a transaction,
// so its PaymentExpired event is in a receipt like every other move of
// money, and every node (and the audit) executes it identically. The
// operation is open to anyone and does only what the hold's time already
// decided; any other node, or a wallet provider, may send it too.
type keeper struct {
	key *crypto.PrivateKey
	// last is the keeper's transaction still on its way (zero: none); a
	// new one waits until it has left the pool and its nonce is applied,
	// so the keeper never sends a second call for the same due payments.
	last      common.Hash
	lastNonce uint64
	since     time.Time
}

// keeperKey derives the keeper's account from the node key: an account of
// its own, so its nonces never race the validator's own transactions.
func keeperKey(node *crypto.PrivateKey) (*crypto.PrivateKey, error) {
	k, err := crypto.PrivateKeyFromBytes(ethcrypto.Keccak256([]byte("tally/payments-keeper"), node.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("payments keeper key: %w", err)
	}
	return k, nil
}

// startKeeper starts the keeper's loop; the caller has made n.stop.
func (n *Node) startKeeper() error {
	k, err := keeperKey(n.key)
	if err != nil {
		return err
	}
	n.keeper = &keeper{key: k}
	n.bg.Add(1)
	go n.every(keeperCheck, n.keepExpiries)
	return nil
}

// KeeperAddress is the account this node sends expirePayments from.
func (n *Node) KeeperAddress() common.Address { return n.keeper.key.Address() }

// keepExpiries sends one expirePayments when this node leads, a held
// payment is due at the head's block time and no earlier call is on its
// way. A call with more due than one transaction expires
// (state.MaxExpiriesPerCall) is followed by another once it is applied.
func (n *Node) keepExpiries() {
	if !n.engine.IsLeader() || n.engine.Halted() != nil {
		return
	}
	k := n.keeper
	from := k.key.Address()
	if k.last != (common.Hash{}) {
		applied, err := n.db.Nonce(from)
		if err != nil {
			n.log.Warn("payments keeper: read nonce", "err", err)
			return
		}
		_, _, pooled := n.pool.Get(k.last)
		if applied <= k.lastNonce && (pooled || time.Since(k.since) < 10*keeperSubmitTimeout) {
			return // still on its way (pooled, or in a block not yet applied)
		}
		k.last = common.Hash{}
	}
	due, err := n.db.HeldDue()
	if err != nil {
		n.log.Warn("payments keeper: read held payments", "err", err)
		return
	}
	if !due {
		return
	}
	nonce, err := n.pool.PendingNonce(from)
	if err != nil {
		n.log.Warn("payments keeper: pending nonce", "err", err)
		return
	}
	data, err := chain.ConfirmationsABI.Pack("expirePayments")
	if err != nil {
		panic(fmt.Sprintf("encode expirePayments: %v", err)) // no arguments
	}
	to := chain.ConfirmationsAddress
	id := n.genesis.ChainIDBig()
	tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, Nonce: nonce, To: &to, Gas: chain.GasPerSystemCall,
		GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Data: data}), id, k.key)
	if err != nil {
		n.log.Warn("payments keeper: sign", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), keeperSubmitTimeout)
	defer cancel()
	go func() { // Close does not wait out a replication that cannot finish
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := n.SubmitTx(ctx, tx); err != nil {
		n.log.Warn("payments keeper: expirePayments not admitted", "err", err)
		return
	}
	k.last, k.lastNonce, k.since = tx.Hash(), nonce, time.Now()
	n.log.Info("payments keeper: sent expirePayments", "tx", tx.Hash(), "from", from)
}
