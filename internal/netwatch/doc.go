// Package netwatch watches what an installer does to the network of the
// namespace it runs in, for both build backends (the sandbox's init and
// the VM guest agent call it, so one installer gives the same findings):
//   - I2: Recorder answers DNS on loopback and records the connections the
//     installer attempts (host, port, HTTP Host or TLS SNI) and refuses them.
//   - I6: Snapshot and Diff compare links, addresses, routes, rules and
//     nftables before and after.
//
// It needs CAP_NET_ADMIN in the namespace and, for Recorder, a namespace
// with loopback only (it adds default routes through lo).
package netwatch
