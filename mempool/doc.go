// Package mempool holds the signed transactions a node has admitted but not
// yet seen applied.
//
// Admission (Add) checks a transaction statically and by signature (the
// sender is recovered once and cached by hash in chain.SenderCache, after
// chain.CheckTx, whose limits on size and access list are rules of block
// validity too, so an admitted transaction always fits a block), then
// against the applied state: nonce not already used, funded, not known. Each
// sender's transactions are kept in nonce order; a transaction whose nonce
// leaves a gap is held until the gap fills. A gap that stays open (the
// missing nonce was lost with a crashed node, or never sent) is visible
// (Status names the missing nonce); once older than Config.GapGrace new
// transactions behind it are refused with ErrMissingNonce naming it, and
// after Config.GapExpiry ExpireGaps drops the waiting transactions, so
// the wallet re-sends from the missing nonce.
//
// The leader's block builder calls Take for executable transactions (round
// robin across senders, each sender in nonce order); they stay in the pool,
// marked in flight, until Applied removes them or Return puts them back
// (their block was skipped). Pending nonces count in-flight transactions.
//
// A transaction to Multicall3 (chain.MulticallAddress), which only eth_call
// serves, is refused with ErrMulticallReadOnly.
//
// A sender below KYC tier 1 may only receive (CheckSender), with one
// exception: the Confirmations contract's expirePayments, open to anyone
// (a node's keeper account is unverified), is taken from any sender while
// a held payment is due (State.HeldDue) and refused from every sender
// while none is, since it could then only revert (a relayed copy, which
// the admitting node checked so, is taken whatever this node's head).
//
// Refusals wrap errors worded as go-ethereum's pool words them for the
// same cause ("nonce too high", "replacement transaction underpriced",
// "insufficient funds for gas * price + value", …), since client
// libraries classify errors by these words. Config.OnAdmit hears of every
// admitted transaction (the node's newPendingTransactions feed).
//
// Everything a client can grow is bounded: per-account and total counts,
// the nonce gap and how long transactions wait behind one. All methods are safe for concurrent use.
package mempool
