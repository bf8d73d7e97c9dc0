package specialaddr_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/specialaddr"
)

// Rule C6: a webhook never reaches an internal address. Each range the
// issue named, with the edge addresses inside and just outside.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		refused bool
		reason  string // part of the message when refused
	}{
		// 100.64.0.0/10 shared address space (carrier-grade NAT).
		{"100.63.255.255", false, ""},
		{"100.64.0.0", true, "RFC 6598"},
		{"100.127.255.255", true, "RFC 6598"},
		{"100.128.0.0", false, ""},
		// 192.0.0.0/24 IETF protocol assignments, anycast entries included.
		{"191.255.255.255", false, ""},
		{"192.0.0.0", true, "RFC 7335"},
		{"192.0.0.9", true, "RFC 7723"},
		{"192.0.0.255", true, "RFC 6890"},
		{"192.0.1.0", false, ""},
		// 198.18.0.0/15 benchmarking.
		{"198.17.255.255", false, ""},
		{"198.18.0.0", true, "RFC 2544"},
		{"198.19.255.255", true, "RFC 2544"},
		{"198.20.0.0", false, ""},
		// 0.0.0.0/8: all of it, not only 0.0.0.0.
		{"0.0.0.0", true, "RFC 1122"},
		{"0.0.0.1", true, "RFC 791"},
		{"0.255.255.255", true, "RFC 791"},
		{"1.0.0.0", false, ""},
		// 240.0.0.0/4 reserved and the limited broadcast address.
		{"239.255.255.255", true, "multicast"},
		{"240.0.0.0", true, "RFC 1112"},
		{"255.255.255.254", true, "RFC 1112"},
		{"255.255.255.255", true, "limited broadcast"},
		{"223.255.255.255", false, ""},
		// What was refused before stays refused.
		{"127.0.0.1", true, "loopback"},
		{"10.0.0.1", true, "RFC 1918"},
		{"172.15.255.255", false, ""},
		{"172.16.0.0", true, "RFC 1918"},
		{"172.31.255.255", true, "RFC 1918"},
		{"172.32.0.0", false, ""},
		{"192.168.1.1", true, "RFC 1918"},
		{"169.254.169.254", true, "link local"},
		{"8.8.8.8", false, ""},
		// IPv6 plain blocks.
		{"::", true, "unspecified"},
		{"::1", true, "loopback"},
		{"fe80::1%eth0", true, "link-local"},
		{"fc00::1", true, "unique-local"},
		{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "unique-local"},
		{"fec0::1", true, "site-local"},
		{"ff02::1", true, "multicast"},
		{"2001:db8::1", true, "RFC 3849"},
		{"100::1", true, "RFC 6666"},
		{"3fff::1", true, "RFC 9637"},
		{"4000::1", true, "2000::/3"},
		{"2606:4700:4700::1111", false, ""},
		// IPv4-mapped and IPv4-compatible: judged by the IPv4 address.
		{"::ffff:127.0.0.1", true, "IPv4-mapped address (RFC 4291) embedding loopback"},
		{"::ffff:100.64.0.1", true, "RFC 6598"},
		{"::ffff:8.8.8.8", false, ""},
		{"::10.0.0.1", true, "IPv4-compatible address (RFC 4291 §2.5.5.1) embedding private-use"},
		{"::8.8.8.8", false, ""},
		// NAT64: the well-known prefix embeds; the local-use one is internal.
		{"64:ff9b::10.1.2.3", true, "RFC 6052) embedding private-use"},
		{"64:ff9b::169.254.169.254", true, "link local"},
		{"64:ff9b::8.8.8.8", false, ""},
		{"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", true, "2000::/3"},
		{"64:ff9b:1::", true, "RFC 8215"},
		{"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", true, "RFC 8215"},
		{"64:ff9b:1::8.8.8.8", true, "RFC 8215"},
		// 6to4: bits 16–47.
		{"2002:7f00:1::", true, "6to4 (RFC 3056) embedding loopback"},
		{"2002:c0a8:0101::1", true, "RFC 1918"},
		{"2002:0808:0808::1", false, ""},
		{"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, ""},
		{"2003::1", false, ""},
		// Teredo: server at bits 32–63, client IPv4 inverted in the last 32.
		{"2001:0:0808:0808::f5ff:fffe", true, "Teredo (RFC 4380) embedding private-use"}, // client ^f5fffffe = 10.0.0.1
		{"2001:0:0a00:0001::f7f7:f7f7", true, "Teredo (RFC 4380) embedding private-use"}, // server 10.0.0.1
		{"2001:0:0808:0808::80ff:fffe", true, "loopback"},                                // client 127.0.0.1
		{"2001:0:0808:0808::f7f7:f7f7", false, ""},                                       // client 8.8.8.8
		// The rest of 2001::/23 is refused outright.
		{"2001:1::1", true, "RFC 7723"},
		{"2001:2::1", true, "RFC 5180"},
		{"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", true, "RFC 2928"},
		{"2001:200::", false, ""},
	} {
		err := specialaddr.Check(netip.MustParseAddr(tc.addr))
		if !tc.refused {
			if err != nil {
				t.Errorf("%s: %v, want it allowed", tc.addr, err)
			}
			continue
		}
		var re *specialaddr.RefusedError
		if !errors.As(err, &re) || !errors.Is(err, specialaddr.ErrRefused) {
			t.Errorf("%s: %v, want it refused", tc.addr, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "internal address refused") || !strings.Contains(msg, tc.reason) || !strings.Contains(msg, "C6") {
			t.Errorf("%s: message %q, want it to say internal address refused, C6 and %q", tc.addr, msg, tc.reason)
		}
		// The message names the block, never the address.
		if strings.Contains(msg, strings.Split(tc.addr, "%")[0]) && tc.addr != "::" {
			t.Errorf("%s: message %q echoes the address", tc.addr, msg)
		}
	}
}

// Every block of the table refuses its first and last address, unless it
// is a translation block whose embedded address is public.
func TestEveryBlockRefusesItsEdges(t *testing.T) {
	for _, table := range [][]specialaddr.Block{specialaddr.IPv4, specialaddr.IPv6} {
		for _, b := range table {
			if b.Name == "" || b.RFC == "" {
				t.Errorf("%s: entry without name or RFC", b.Prefix)
			}
			if b.Prefix != b.Prefix.Masked() {
				t.Errorf("%s: prefix has host bits set", b.Prefix)
			}
			if b.Embeds != nil {
				continue
			}
			first := b.Prefix.Addr()
			last := lastOf(b.Prefix)
			for _, a := range []netip.Addr{first, last} {
				if err := specialaddr.Check(a); !errors.Is(err, specialaddr.ErrRefused) {
					t.Errorf("%s (%s %s): %v, want refused", a, b.Name, b.RFC, err)
				}
			}
		}
	}
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
