// Package outbox is the signed-webhook outbox of Tally's services (the
// risk monitor, the merchant notifier): notifications written into the
// service's own Pebble database in the same batch as the event that
// causes them, and POSTed to one receiver until it answers 2xx.
//
// The guarantees, which docs/monitor.md and docs/merchants.md state to
// receivers:
//
//   - At least once, through crashes: a notification is queued in the
//     batch that makes its event happen (a crash loses both or neither)
//     and deleted only after a 2xx answer (a crash between the answer
//     and the deletion sends it again, with the same id).
//   - A stable delivery id (the X-Tally-Delivery header and the body's
//     "id", chosen by the service): the same in every retry, unique per
//     event, so a receiver that saw it already answers 2xx and does
//     nothing.
//   - Signed: X-Tally-Signature is package signature's scheme (Stripe's):
//     "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t "." body)>".
//   - Retried with backoff: retry-min x 2^(attempt-1), at most retry-max;
//     a delivery failing for max-age is dropped and counted. Deliveries go
//     out oldest first, one at a time.
//   - Bounded: at most max-pending deliveries wait; one beyond it is
//     dropped, logged and counted.
package outbox
