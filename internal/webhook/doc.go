// Package webhook stores each account's webhook (URL and signing secret)
// and delivers events to it: signed POSTs (X-Pib-Signature: sha256=<HMAC of
// the body under the secret>), retried with backoff as River jobs.
//
// The package does not decide what to send: a caller queues an event with
// Enqueue in the transaction that makes the change it reports, so a
// delivery exists exactly when the change was committed. The pipeline does
// so for every build state change; its River client works the delivery
// jobs (Register).
//
// Rule C6: unless AllowPrivate, a URL naming a special-purpose address
// (specialaddr) is refused at registration, and the address actually
// dialled is checked again at every delivery (Client).
//
// Limits: secrets are stored in clear because they must sign; deliveries
// are kept forever; an event is delivered at least once (a receiver may see
// one twice, or out of order after retries, and tells them apart by
// X-Pib-Delivery).
package webhook
