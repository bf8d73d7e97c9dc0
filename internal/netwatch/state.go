//go:build linux

package netwatch

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Snapshot reads the current network namespace's State.
func Snapshot() (State, error) {
	st := State{}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		st["link"] = append(st["link"], fmt.Sprintf("%s type %s mtu %d state %s flags %s", a.Name, l.Type(), a.MTU, a.OperState, a.Flags))
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses: %w", err)
	}
	for _, a := range addrs {
		st["address"] = append(st["address"], fmt.Sprintf("%s dev %s", a.IPNet, names[a.LinkIndex]))
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		s := fmt.Sprintf("%s dev %s table %d type %d", dst, names[r.LinkIndex], r.Table, r.Type)
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if r.Src != nil {
			s += " src " + r.Src.String()
		}
		st["route"] = append(st["route"], s)
	}
	rules, err := netlink.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	for _, r := range rules {
		st["rule"] = append(st["rule"], r.String())
	}
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("nftables tables: %w", err)
	}
	for _, t := range tables {
		st["nftables table"] = append(st["nftables table"], fmt.Sprintf("%s %s", familyName(t.Family), t.Name))
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("nftables chains: %w", err)
	}
	for _, ch := range chains {
		id := fmt.Sprintf("%s %s %s", familyName(ch.Table.Family), ch.Table.Name, ch.Name)
		st["nftables chain"] = append(st["nftables chain"], id)
		rs, err := c.GetRules(ch.Table, ch)
		if err != nil {
			continue
		}
		for _, r := range rs {
			var ex []string
			for _, e := range r.Exprs {
				ex = append(ex, strings.TrimPrefix(fmt.Sprintf("%+v", e), "&"))
			}
			st["nftables rule"] = append(st["nftables rule"], id+": "+strings.Join(ex, " "))
		}
	}
	// Legacy x_tables: only which tables exist is visible without iptables.
	for _, f := range []string{"/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"} {
		if b, err := os.ReadFile(f); err == nil {
			for _, n := range strings.Fields(string(b)) {
				st["iptables-legacy table"] = append(st["iptables-legacy table"], f[10:len(f)-6]+" "+n)
			}
		}
	}
	for k := range st {
		slices.Sort(st[k])
	}
	return st, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprint(f)
}
