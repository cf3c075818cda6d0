// Package merchant is the merchant notifier behind `tally merchant`
// (docs/merchants.md): the service an e-commerce platform runs to learn
// reliably that an order was paid, partly paid, overpaid, refunded,
// disputed or that it expired unpaid.
//
// It follows the chain from any node over JSON-RPC (eth_getLogs on the
// asset facades: the PaymentReference events paying the shop's accounts,
// orders.payees, the Refund events they make, and the Disputes
// contract's events on their payments), matches each to the
// order registered under its reference (wallet.PaymentRequest, registered
// over the order API) when it pays the order's payee in the order's
// asset, and delivers a signed webhook per event through package outbox:
// HMAC-signed, retried with backoff, a stable delivery id
// ("payment-<tx>-<log index>"), at least once. The orders a run of blocks
// changes, their notifications and the cursor past the blocks are one
// synced Pebble batch (Store), so a crash repeats or loses nothing beyond
// at-least-once. An order nothing was paid to by its expiry is notified
// as order.expired once, by the chain's clock (expire.go); an order can
// be deleted over the API (Notifier.Delete). The API, the worker loops
// and the graceful stop are package service's, shared with the monitor.
//
// Receiver is the reference webhook endpoint (`tally merchant
// receiver`): signature check, and each delivery id handled once,
// recorded durably with the work.
package merchant
