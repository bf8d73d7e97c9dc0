//go:build linux

package vmbuild

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/pib-dev/pib/internal/rootfs"
	"github.com/pib-dev/pib/internal/sandbox"
)

// The file-based checks of a sandbox build, on a vm build's changes: the
// sandbox keeps its own unexported (package sandbox, files.go), and a vm
// build must report the same findings (the rule suite runs over both
// backends), so these follow them line for line. Keep the two in step.

// maxNetworkFileBytes caps how much of one changed sysctl file is read.
const maxNetworkFileBytes = 1 << 20

// networkConfigPaths are the I6 network configuration files and folders.
var networkConfigPaths = []string{
	"etc/network/", "etc/netplan/", "etc/NetworkManager/", "etc/systemd/network/",
	"etc/sysconfig/network-scripts/", "etc/resolv.conf", "etc/nftables.conf", "etc/iptables/",
	"etc/sysconfig/iptables", "etc/sysconfig/ip6tables", "etc/sysconfig/nftables.conf",
}

// networkFileFindings reports changed network configuration files and
// sysctl files that set forwarding or routing (I6).
func networkFileFindings(upper string, ch sandbox.Changes) ([]sandbox.Finding, error) {
	root, err := rootfs.Open(upper)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var out []sandbox.Finding
	for _, f := range ch.Files {
		if f.Type == "dir" && f.Change != "deleted" {
			continue
		}
		hit := false
		for _, p := range networkConfigPaths {
			if f.Path == strings.TrimSuffix(p, "/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(f.Path, p)) {
				hit = true
			}
		}
		if !hit && (f.Path == "etc/sysctl.conf" || strings.HasPrefix(f.Path, "etc/sysctl.d/") ||
			strings.HasPrefix(f.Path, "usr/lib/sysctl.d/") || strings.HasPrefix(f.Path, "lib/sysctl.d/") ||
			strings.HasPrefix(f.Path, "run/sysctl.d/")) && f.Change != "deleted" {
			hit = sysctlSetsRouting(root, f.Path)
		}
		if hit {
			out = append(out, sandbox.Finding{Rule: "I6",
				Message: "the installer " + f.Change + " network configuration file /" + f.Path + "; installers must not change network configuration"})
		}
	}
	return out, nil
}

// sysctlSetsRouting reports whether the sysctl file rel of the upper
// directory sets forwarding or routing keys; rel is resolved inside it.
func sysctlSetsRouting(root *rootfs.FS, rel string) bool {
	b, err := root.ReadFile(rel, maxNetworkFileBytes)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, _, _ := strings.Cut(l, "=")
		k = strings.ReplaceAll(strings.TrimSpace(strings.TrimPrefix(k, "-")), "/", ".")
		if strings.Contains(k, "forwarding") || strings.Contains(k, "ip_forward") || strings.Contains(k, "rp_filter") ||
			strings.Contains(k, "accept_redirects") || strings.Contains(k, "send_redirects") || strings.Contains(k, "accept_ra") ||
			strings.Contains(k, "accept_source_route") || strings.HasPrefix(k, "net.ipv4.route") || strings.HasPrefix(k, "net.ipv6.route") ||
			strings.Contains(k, "proxy_arp") || strings.Contains(k, "ip_nonlocal_bind") {
			return true
		}
	}
	return false
}

// specialFileFindings reports the device nodes, FIFOs and sockets a build
// added (T2); Diff never creates them on the host.
func specialFileFindings(ch sandbox.Changes) []sandbox.Finding {
	var paths []string
	for _, f := range ch.Files {
		if f.Change != "deleted" && (f.Type == "device" || f.Type == "fifo" || f.Type == "socket" || f.Type == "other") {
			paths = append(paths, "/"+f.Path+" ("+f.Type+")")
		}
	}
	if len(paths) == 0 {
		return nil
	}
	return []sandbox.Finding{{Rule: "T2",
		Message: fmt.Sprintf("the installer left %d device node(s), FIFO(s) or socket(s) in the image; an image must not ship them: remove them before the installer exits (create FIFOs and sockets at run time, e.g. under /run)", len(paths)),
		Detail:  strings.Join(paths, "\n")}}
}

// detachLoops detaches the loop devices backed by file (a killed build's).
func detachLoops(file string) {
	out, err := exec.Command("losetup", "--noheadings", "--output", "NAME", "--associated", file).Output()
	if err != nil {
		return
	}
	for _, dev := range strings.Fields(string(out)) {
		exec.Command("losetup", "--detach", dev).Run()
	}
}
