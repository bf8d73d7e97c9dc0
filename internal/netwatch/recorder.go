//go:build linux

package netwatch

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// Finding is one broken rule (the fields of sandbox.Finding).
type Finding struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// I2: the build's network namespace has loopback only. A DNS responder on
// 127.0.0.1:53 answers every name with a loopback address of its own, and
// an nftables rule in the namespace's nat output hook redirects TCP to those
// addresses to a recorder, which reads the HTTP Host or TLS SNI and closes.

const recorderPort = 1 // below any port an installer's own daemon would use

// Recorder is the I2 DNS responder and connection recorder.
type Recorder struct {
	logf    func(format string, args ...any)
	added   []*netlink.Route // routes StartRecorder added, for Restore
	tables  []*nftables.Table
	mu      sync.Mutex
	next    uint32                // next address to hand out, host order
	byName  map[string]netip.Addr // lower-case name without the final dot
	byAddr  map[netip.Addr]string
	lookups []string // names, in order of first lookup
	conns   []connRecord
	closers []io.Closer
}

type connRecord struct {
	Host, Via string
	Port      int
}

// StartRecorder brings up loopback, routes every address through it,
// redirects DNS and TCP to the recorder with an nftables table "pib" in
// the current network namespace, and starts answering. logf gets the
// build log's lines (lookups, connection attempts). The namespace must
// have no other interface up: a guest without a NIC, or the sandbox.
func StartRecorder(logf func(format string, args ...any)) (*Recorder, error) {
	r := &Recorder{logf: logf, next: 0x7f010001, byName: map[string]netip.Addr{}, byAddr: map[netip.Addr]string{}}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("bring up loopback: %w", err)
	}
	// A default route through loopback lets a connection to a literal
	// address reach the nat hook (and so the recorder) instead of failing
	// at once with "network unreachable". No packet can leave: lo is the
	// only interface.
	v4 := &netlink.Route{LinkIndex: lo.Attrs().Index, Scope: netlink.SCOPE_LINK,
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}
	if err := netlink.RouteAdd(v4); err != nil {
		return nil, fmt.Errorf("default route through loopback: %w", err)
	}
	r.added = append(r.added, v4)
	t, err := addRedirect(nftables.TableFamilyIPv4)
	if err != nil {
		r.Restore()
		return nil, fmt.Errorf("nftables redirect: %w", err)
	}
	r.tables = append(r.tables, t)
	if err := r.listen("4", "127.0.0.1"); err != nil {
		r.Stop()
		r.Restore()
		return nil, err
	}
	// The same for IPv6 where the kernel has it (::1 on lo).
	v6 := &netlink.Route{LinkIndex: lo.Attrs().Index, Scope: netlink.SCOPE_UNIVERSE,
		Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}
	if err := netlink.RouteAdd(v6); err == nil {
		r.added = append(r.added, v6)
		t, err := addRedirect(nftables.TableFamilyIPv6)
		if err != nil {
			logf("IPv6 connections are not recorded: nftables: %v", err)
		} else {
			r.tables = append(r.tables, t)
			if err := r.listen("6", "::1"); err != nil {
				logf("IPv6 connections are not recorded: %v", err)
			}
		}
	}
	return r, nil
}

// listen starts the DNS responder and the recorder on one loopback address.
func (r *Recorder) listen(v, addr string) error {
	udp, err := net.ListenPacket("udp"+v, net.JoinHostPort(addr, "53"))
	if err != nil {
		return err
	}
	r.closers = append(r.closers, udp)
	tcpDNS, err := net.Listen("tcp"+v, net.JoinHostPort(addr, "53"))
	if err != nil {
		return err
	}
	r.closers = append(r.closers, tcpDNS)
	rec, err := net.Listen("tcp"+v, net.JoinHostPort(addr, fmt.Sprint(recorderPort)))
	if err != nil {
		return err
	}
	r.closers = append(r.closers, rec)
	go r.serveUDP(udp)
	go r.serveTCPDNS(tcpDNS)
	go r.serveRecorder(rec.(*net.TCPListener))
	return nil
}

// addRedirect sends TCP to anywhere but the loopback address to the
// recorder, and DNS queries to any other server to our responder.
func addRedirect(family nftables.TableFamily) (*nftables.Table, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	self := []byte{127, 0, 0, 1}
	daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	if family == nftables.TableFamilyIPv6 {
		self = net.IPv6loopback
		daddr = &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	}
	t := c.AddTable(&nftables.Table{Family: family, Name: "pib"})
	ch := c.AddChain(&nftables.Chain{Name: "record", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	redirect := func(proto byte, dport uint16, to uint16) {
		ex := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			daddr,
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: self},
		}
		if dport != 0 {
			ex = append(ex,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, dport)})
		}
		ex = append(ex,
			&expr.Immediate{Register: 1, Data: binary.BigEndian.AppendUint16(nil, to)},
			&expr.Redir{RegisterProtoMin: 1})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ex})
	}
	redirect(unix.IPPROTO_TCP, 53, 53)
	redirect(unix.IPPROTO_TCP, 0, recorderPort)
	redirect(unix.IPPROTO_UDP, 53, 53)
	return t, c.Flush()
}

// Stop closes the responder and the recorder.
func (r *Recorder) Stop() {
	for _, c := range r.closers {
		c.Close()
	}
}

// Restore removes the nftables table and the routes StartRecorder added:
// in a guest's root namespace they must not outlive the install (the
// sandbox's namespace dies with the build and needs no Restore).
func (r *Recorder) Restore() error {
	var errs []error
	if len(r.tables) > 0 {
		c, err := nftables.New()
		if err != nil {
			errs = append(errs, err)
		} else {
			for _, t := range r.tables {
				c.DelTable(t)
			}
			errs = append(errs, c.Flush())
		}
		r.tables = nil
	}
	for _, rt := range r.added {
		if err := netlink.RouteDel(rt); err != nil {
			errs = append(errs, fmt.Errorf("remove route %s: %w", rt.Dst, err))
		}
	}
	r.added = nil
	return errors.Join(errs...)
}

func (r *Recorder) addrFor(name string) netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !slices.Contains(r.lookups, name) {
		r.lookups = append(r.lookups, name)
		r.logf("DNS lookup: %s", name)
	}
	if a, ok := r.byName[name]; ok {
		return a
	}
	if r.next >= 0x7ffffffe {
		r.next = 0x7f010001 // 16 million names later: start reusing
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], r.next)
	r.next++
	if b[3] == 0 || b[3] == 255 {
		binary.BigEndian.PutUint32(b[:], r.next)
		r.next++
	}
	a := netip.AddrFrom4(b)
	r.byName[name], r.byAddr[a] = a, name
	return a
}

// answer builds the response to one DNS query: A → our loopback address,
// anything else → no records (so resolvers fall back to A).
func (r *Recorder) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) == 0 {
		return nil, false
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	b.EnableCompression()
	b.StartQuestions()
	for _, qq := range qs {
		b.Question(qq)
	}
	b.StartAnswers()
	for _, qq := range qs {
		name := strings.ToLower(strings.TrimSuffix(qq.Name.String(), "."))
		if local, ok := localName(name); ok {
			// The sandbox's own names are not network use.
			if local.IsValid() && qq.Type == dnsmessage.TypeA {
				b.AResource(dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 60},
					dnsmessage.AResource{A: local.As4()})
			}
			continue
		}
		a := r.addrFor(name)
		if qq.Type == dnsmessage.TypeA && qq.Class == dnsmessage.ClassINET {
			b.AResource(dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 60},
				dnsmessage.AResource{A: a.As4()})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

func (r *Recorder) serveUDP(c net.PacketConn) {
	buf := make([]byte, 4096)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if out, ok := r.answer(buf[:n]); ok {
			c.WriteTo(out, from)
		}
	}
}

func (r *Recorder) serveTCPDNS(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var n uint16
			for binary.Read(c, binary.BigEndian, &n) == nil {
				q := make([]byte, n)
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				out, ok := r.answer(q)
				if !ok {
					return
				}
				c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out))))
				c.Write(out)
			}
		}()
	}
}

func (r *Recorder) serveRecorder(l *net.TCPListener) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			return
		}
		go r.record(c)
	}
}

func (r *Recorder) record(c *net.TCPConn) {
	defer c.Close()
	dst, err := originalDst(c)
	if err != nil {
		r.logf("connection recorder: %v", err)
		return
	}
	r.mu.Lock()
	host, ok := r.byAddr[dst.Addr()]
	r.mu.Unlock()
	if !ok {
		host = dst.Addr().String()
	}
	rec := connRecord{Host: host, Port: int(dst.Port())}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReaderSize(c, 16<<10)
	first, _ := br.Peek(1)
	switch {
	case len(first) == 1 && first[0] == 0x16:
		hello, _ := br.Peek(br.Buffered())
		if len(hello) < 5 {
			hello, _ = br.Peek(5)
		}
		if len(hello) >= 5 {
			n := int(binary.BigEndian.Uint16(hello[3:5])) + 5
			hello, _ = br.Peek(min(n, br.Size()))
		}
		if sni := tlsSNI(hello); sni != "" {
			rec.Via = "TLS SNI " + sni
		}
	case len(first) == 1:
		if req, err := http.ReadRequest(br); err == nil {
			rec.Via = fmt.Sprintf("HTTP %s %s, Host %s", req.Method, req.URL.RequestURI(), req.Host)
			io.WriteString(c, "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\npib: test builds have no network; packages must be complete (I2)\n")
		}
	}
	r.logf("connection attempt: %s", strings.TrimSpace(net.JoinHostPort(rec.Host, fmt.Sprint(rec.Port))+" "+rec.Via))
	r.mu.Lock()
	r.conns = append(r.conns, rec)
	r.mu.Unlock()
}

// originalDst reads the address the installer dialled before the redirect
// (SO_ORIGINAL_DST, or its IPv6 twin).
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	v6 := c.LocalAddr().(*net.TCPAddr).IP.To4() == nil
	var ap netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		// The kernel fills a sockaddr_in or sockaddr_in6; these x/sys
		// helpers fetch buffers of at least that size, read as bytes.
		if v6 {
			const ip6tSOOriginalDst = 80
			m, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst)
			if err != nil {
				serr = err
				return
			}
			b := (*[28]byte)(unsafe.Pointer(&m.Addr))
			ap = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:4]))
			return
		}
		m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if err != nil {
			serr = err
			return
		}
		b := m.Multiaddr
		ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), binary.BigEndian.Uint16(b[2:4]))
	})
	if err == nil {
		err = serr
	}
	return ap, err
}

// tlsSNI extracts the server name from a TLS ClientHello record.
func tlsSNI(b []byte) string {
	if len(b) < 5+4 || b[0] != 0x16 || b[5] != 1 {
		return ""
	}
	p := b[5+4:] // handshake body
	skip := func(n int) bool {
		if len(p) < n {
			return false
		}
		p = p[n:]
		return true
	}
	vec := func(lenBytes int) bool {
		if len(p) < lenBytes {
			return false
		}
		n := 0
		for i := range lenBytes {
			n = n<<8 | int(p[i])
		}
		return skip(lenBytes + n)
	}
	if !skip(2+32) || !vec(1) || !vec(2) || !vec(1) || len(p) < 2 {
		return ""
	}
	p = p[2:]
	for len(p) >= 4 {
		typ, n := binary.BigEndian.Uint16(p), int(binary.BigEndian.Uint16(p[2:]))
		p = p[4:]
		if len(p) < n {
			return ""
		}
		if typ == 0 { // server_name
			e := p[:n]
			if len(e) >= 5 && e[2] == 0 {
				l := int(binary.BigEndian.Uint16(e[3:]))
				if len(e) >= 5+l {
					return string(e[5 : 5+l])
				}
			}
			return ""
		}
		p = p[n:]
	}
	return ""
}

// Findings returns one I2 finding per (host, port) reached and one per
// name looked up but never connected to.
func (r *Recorder) Findings() []Finding {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Finding
	type key struct {
		host string
		port int
	}
	seen := map[key][]string{}
	var order []key
	connected := map[string]bool{}
	for _, c := range r.conns {
		k := key{c.Host, c.Port}
		if _, ok := seen[k]; !ok {
			order = append(order, k)
		}
		if c.Via != "" && !slices.Contains(seen[k], c.Via) {
			seen[k] = append(seen[k], c.Via)
		} else if seen[k] == nil {
			seen[k] = []string{}
		}
		connected[c.Host] = true
	}
	for _, k := range order {
		via := seen[k]
		if len(via) > 10 {
			via = append(via[:10:10], fmt.Sprintf("… %d more", len(seen[k])-10))
		}
		out = append(out, Finding{Rule: "I2",
			Message: fmt.Sprintf("packages must be complete; the installer tried to reach %s", net.JoinHostPort(k.host, fmt.Sprint(k.port))),
			Detail:  strings.Join(via, "\n")})
	}
	for _, name := range r.lookups {
		if !connected[name] {
			out = append(out, Finding{Rule: "I2",
				Message: fmt.Sprintf("packages must be complete; the installer looked up %s (DNS)", name)})
		}
	}
	return out
}

// localName tells names that stay inside the sandbox: its host name, the
// localhost names and reverse lookups of loopback addresses.
func localName(name string) (netip.Addr, bool) {
	switch {
	case name == "pib-build" || strings.HasPrefix(name, "pib-build."):
		return netip.AddrFrom4([4]byte{127, 0, 1, 1}), true
	case name == "localhost" || strings.HasSuffix(name, ".localhost") || name == "localhost.localdomain":
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), true
	case strings.HasSuffix(name, ".127.in-addr.arpa") || name == "127.in-addr.arpa":
		return netip.Addr{}, true
	}
	return netip.Addr{}, false
}
