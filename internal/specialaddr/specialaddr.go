// Package specialaddr is the table of IANA special-purpose IP address
// blocks (the IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890
// and the RFCs that updated them) and the one question pib asks of it:
// may a webhook (rule C6) connect to this address?
//
// Every block of both registries is refused, including those the
// registries mark globally reachable (anycast services, AS112, AMT): no
// webhook receiver lives there, and refusing costs nothing. Multicast,
// IPv6 site-local and IPv6 outside global unicast 2000::/3 are refused too,
// although they live in other registries. The translation forms (IPv4-
// mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4, Teredo) are judged by
// the IPv4 addresses they embed, because a packet to them ends up there.
//
// Limits: the table is data written from the registries as of 2025; a
// block IANA adds later is not refused until it is added here. A host
// name is only as safe as its resolution at the moment of the check, which
// is why callers check again at dial time.
package specialaddr

import (
	"errors"
	"fmt"
	"net/netip"
)

// Block is one entry of the table.
type Block struct {
	Prefix netip.Prefix
	Name   string // as the registry names it
	RFC    string // the defining RFC
	// Embeds, when set, returns the IPv4 addresses a translation address
	// carries; the address is judged by them instead of being refused.
	Embeds func(netip.Addr) []netip.Addr
}

func (b Block) reason() string { return b.Name + " (" + b.RFC + ")" }

func block(prefix, name, rfc string) Block {
	return Block{Prefix: netip.MustParsePrefix(prefix), Name: name, RFC: rfc}
}

func embedding(prefix, name, rfc string, f func(a [16]byte) []netip.Addr) Block {
	b := block(prefix, name, rfc)
	b.Embeds = func(a netip.Addr) []netip.Addr { return f(a.As16()) }
	return b
}

func v4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b)) }

// IPv4 is the IPv4 Special-Purpose Address Registry, plus multicast.
var IPv4 = []Block{
	block("0.0.0.0/8", "this network", "RFC 791 §3.2"),
	block("0.0.0.0/32", "this host on this network", "RFC 1122 §3.2.1.3"),
	block("10.0.0.0/8", "private-use", "RFC 1918"),
	block("100.64.0.0/10", "shared address space", "RFC 6598"),
	block("127.0.0.0/8", "loopback", "RFC 1122 §3.2.1.3"),
	block("169.254.0.0/16", "link local", "RFC 3927"),
	block("172.16.0.0/12", "private-use", "RFC 1918"),
	block("192.0.0.0/24", "IETF protocol assignments", "RFC 6890 §2.1"),
	block("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335"),
	block("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
	block("192.0.0.9/32", "port control protocol anycast", "RFC 7723"),
	block("192.0.0.10/32", "traversal using relays around NAT anycast", "RFC 8155"),
	block("192.0.0.170/31", "NAT64/DNS64 discovery", "RFC 8880"),
	block("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
	block("192.31.196.0/24", "AS112-v4", "RFC 7535"),
	block("192.52.193.0/24", "AMT", "RFC 7450"),
	block("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
	block("192.168.0.0/16", "private-use", "RFC 1918"),
	block("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534"),
	block("198.18.0.0/15", "benchmarking", "RFC 2544"),
	block("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
	block("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
	block("224.0.0.0/4", "multicast", "RFC 5771"),
	block("240.0.0.0/4", "reserved", "RFC 1112 §4"),
	block("255.255.255.255/32", "limited broadcast", "RFC 919 §7, RFC 8190"),
}

// IPv6 is the IPv6 Special-Purpose Address Registry, plus IPv4-compatible
// addresses, site-local and multicast.
var IPv6 = []Block{
	block("::/128", "unspecified address", "RFC 4291"),
	block("::1/128", "loopback address", "RFC 4291"),
	embedding("::/96", "IPv4-compatible address", "RFC 4291 §2.5.5.1", func(a [16]byte) []netip.Addr { return []netip.Addr{v4(a[12:])} }),
	embedding("::ffff:0:0/96", "IPv4-mapped address", "RFC 4291", func(a [16]byte) []netip.Addr { return []netip.Addr{v4(a[12:])} }),
	embedding("64:ff9b::/96", "IPv4-IPv6 translation", "RFC 6052", func(a [16]byte) []netip.Addr { return []netip.Addr{v4(a[12:])} }),
	// Local-use NAT64 prefixes translate into the operator's own
	// network, and where the IPv4 address sits depends on a prefix length
	// only that network knows: the whole block is refused.
	block("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
	block("100::/64", "discard-only address block", "RFC 6666"),
	block("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
	block("2001::/23", "IETF protocol assignments", "RFC 2928"),
	// Teredo: bits 32–63 are the server's IPv4 address, the last 32 bits
	// the client's, inverted (RFC 4380 §4).
	embedding("2001::/32", "Teredo", "RFC 4380", func(a [16]byte) []netip.Addr {
		client := [4]byte{^a[12], ^a[13], ^a[14], ^a[15]}
		return []netip.Addr{v4(a[4:8]), netip.AddrFrom4(client)}
	}),
	block("2001:1::1/128", "port control protocol anycast", "RFC 7723"),
	block("2001:1::2/128", "traversal using relays around NAT anycast", "RFC 8155"),
	block("2001:1::3/128", "DNS-SD service registration protocol anycast", "RFC 9665"),
	block("2001:2::/48", "benchmarking", "RFC 5180"),
	block("2001:3::/32", "AMT", "RFC 7450"),
	block("2001:4:112::/48", "AS112-v6", "RFC 7535"),
	block("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
	block("2001:20::/28", "ORCHIDv2", "RFC 7343"),
	block("2001:30::/28", "drone remote ID protocol entity tags", "RFC 9374"),
	block("2001:db8::/32", "documentation", "RFC 3849"),
	// 6to4: bits 16–47 are the IPv4 address of the site.
	embedding("2002::/16", "6to4", "RFC 3056", func(a [16]byte) []netip.Addr { return []netip.Addr{v4(a[2:6])} }),
	block("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534"),
	block("3fff::/20", "documentation", "RFC 9637"),
	block("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
	block("fc00::/7", "unique-local", "RFC 4193"),
	block("fe80::/10", "link-local unicast", "RFC 4291"),
	block("fec0::/10", "deprecated site-local", "RFC 3879"),
	block("ff00::/8", "multicast", "RFC 4291 §2.7"),
}

// globalUnicast is the only IPv6 space allocated for global unicast
// (RFC 4291 §2.4); the rest is reserved by the IETF.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// ErrRefused is what every refusal wraps.
var ErrRefused = errors.New("internal address refused")

// RefusedError says why an address was refused. Its message names the
// block and its RFC but never the address, so that it can be shown to the
// account whose host name resolved there without mapping the network.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%v: %s is not a public address (rule C6); give a public address, or run pib serve --webhook-allow-private", ErrRefused, e.Reason)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// Lookup returns the most specific block holding a, if any.
func Lookup(a netip.Addr) (Block, bool) {
	a = a.WithZone("")
	table := IPv6
	if a.Is4() {
		table = IPv4
	}
	var best Block
	found := false
	for _, b := range table {
		if b.Prefix.Contains(a) && (!found || b.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = b, true
		}
	}
	return best, found
}

// Check returns a *RefusedError when a is a special-purpose address or a
// translation address embedding one, and nil when a may be dialled.
func Check(a netip.Addr) error {
	if !a.IsValid() {
		return &RefusedError{Reason: "an invalid address"}
	}
	b, ok := Lookup(a)
	if !ok {
		if a.Is6() && !globalUnicast.Contains(a) {
			return &RefusedError{Reason: "IPv6 outside global unicast 2000::/3 (RFC 4291 §2.4)"}
		}
		return nil
	}
	if b.Embeds == nil {
		return &RefusedError{Reason: b.reason()}
	}
	for _, inner := range b.Embeds(a) {
		if ib, ok := Lookup(inner); ok {
			return &RefusedError{Reason: b.reason() + " embedding " + ib.reason()}
		}
	}
	return nil
}
