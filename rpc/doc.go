// Package rpc serves Tally's JSON-RPC 2.0 API over HTTP: the eth_* subset
// that wallets and client libraries (ethers.js, web3j, go-ethereum's
// ethclient) need, net_* and web3_*, on go-ethereum's rpc server.
//
// Browser pages of the origins in Limits.CORSOrigins may call it
// (corsHandler answers their preflights, as go-ethereum's node does with
// rs/cors).
//
// Flow of a request: Server.ServeHTTP bounds the body (a JSON-RPC error
// above the limit). A batch made only of eth_sendRawTransaction calls goes
// through the admission pipeline (admit.go): read in one JSON pass, each
// transaction decoded once, the rate limits charged for the batch and the
// senders recovered on all cores in one step, then the whole batch handed
// to the node (BatchAdmitter: the leader admits it, a follower forwards it
// as one message) and each call answered as go-ethereum's server would.
// Any other request is go-ethereum's server's: it decodes the call,
// checks parameter types and dispatches to EthAPI, which reads the applied state (never a block that
// is not committed and applied, so a receipt is final). Its
// eth_sendRawTransaction calls reach the same pipeline (Server.sendOne):
// a single call as a batch of one, and in a mixed HTTP batch or any
// WebSocket batch each run of consecutive sends as one group, admitted
// when go-ethereum reaches the run's first call (sendplan.go; a
// WebSocket connection's reader hands the server each batch message
// before go-ethereum reads it, since go-ethereum reads WebSocket
// messages itself).
//
// The ledger's own reads are tally_* (LedgerAPI: accounts, supply, assets,
// account history, and in ledgerviews.go the views the explorer reads:
// transactions decoded by package txdecode, the newest transactions,
// lookup by reference through the log index, validators, proposals); eth_call runs system operations and views through
// state.Call and reports a revert as go-ethereum does (code 3, Error(reason)).
// State reads that name a block (eth_getBalance, eth_getTransactionCount,
// eth_getCode, eth_call, eth_estimateGas) resolve it in stateAt to a state
// pinned at that block, any of the last state.history-blocks
// (store.DB.StateAt), with go-ethereum's "historical state … is not
// available" past them. Multicall3 at its canonical address is answered by
// the node for eth_call and eth_estimateGas (multicall.go): its inner calls
// are eth_calls from its address on that same state.
// eth_getLogs and installed filters (FilterAPI) read the state's log index;
// submissions pass the per-account and per-IP rate limits (RateLimiter,
// charged by the pipeline) before the Backend sees them.
//
// eth_call and eth_estimateGas answer what sending would do: with from,
// every rule the transaction meets; without, the sender's own rules
// (KYC, freeze, limits) are skipped, and an unfunded plain transfer is
// go-ethereum's "insufficient funds for gas * price + value" (-32000),
// not a revert. The methods that restate the ledger in go-ethereum's
// shapes (block receipts, transactions by position, storage, access
// lists) are in compat.go.
//
// WebSocket connections on the same port get the same API plus
// eth_subscribe("newHeads") and eth_subscribe("logs"), fed by HeadFeed,
// and eth_subscribe("newPendingTransactions"), fed by the PendingFeed of
// the transactions the pool admits (which also serves
// eth_newPendingTransactionFilter's cursors); every subscription is bounded (a subscriber that falls behind is dropped,
// never stalling the node).
//
// Every cost a client controls has a bound in Limits (the [http] and
// [ratelimit] config keys): LimitListener caps the connections, in all and
// per client address, and NewHTTPServer times out slow headers, bodies,
// writes and idle connections; ServeHTTP caps the WebSocket connections
// and times out a WebSocket message that trickles in (messageTimeoutConn);
// subQuota and FilterAPI bound the subscriptions and filters of each
// client; heavyGate bounds the heavy reads running at once, shares them
// fairly between client addresses (a read beyond its client's share
// waits in a bounded queue for a bounded time) and bounds the reply bytes
// they add to a request or batch, on top of go-ethereum's own batch bounds;
// the RateLimiter charges a client's IP before its signatures are
// recovered.
//
// Errors follow go-ethereum's codes: -32700 parse error, -32600 invalid
// request (including an oversized body or batch, or a body too slow),
// -32601 unknown method, -32602 invalid params (wrong types, missing
// params, numbers over 64 bits, a malformed raw transaction), -32000 for a
// refused operation with go-ethereum's messages ("nonce too low", "nonce
// too high", "insufficient funds for gas * price + value", "replacement
// transaction underpriced", "already known", "intrinsic gas too low",
// "exceeds block gas limit") so client libraries classify them, -32003 "response too large" for a batch's reply over its bound,
// -32005 for a limit (rate, log results, reply bytes, filters,
// subscriptions, heavy reads, connections) and 3 for a reverted call.
package rpc
