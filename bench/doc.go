// Package bench is Tally's load generator, behind `tally bench`: it
// pre-signs transfers from funded accounts, submits them as JSON-RPC
// batches of eth_sendRawTransaction (as Ethereum load tools do), follows new
// blocks to time each transaction from submission to inclusion in an
// applied block, and at the end checks every receipt for status 1.
//
// Each sender's transactions are submitted in nonce order by one worker, so
// the node never sees a nonce gap it has to hold. Given several nodes of a
// cluster, the workers spread over them and each fails over to the others
// through wallet.Client (a batch whose answer was lost is sent again with
// the same transactions; "already known" then counts as admitted).
package bench
