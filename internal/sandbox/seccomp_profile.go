//go:build linux

package sandbox

import (
	"fmt"
	"slices"
	"strings"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var capNames = map[uint]string{
	unix.CAP_CHOWN: "CAP_CHOWN", unix.CAP_DAC_OVERRIDE: "CAP_DAC_OVERRIDE", unix.CAP_FSETID: "CAP_FSETID",
	unix.CAP_FOWNER: "CAP_FOWNER", unix.CAP_MKNOD: "CAP_MKNOD", unix.CAP_NET_RAW: "CAP_NET_RAW",
	unix.CAP_SETGID: "CAP_SETGID", unix.CAP_SETUID: "CAP_SETUID", unix.CAP_SETFCAP: "CAP_SETFCAP",
	unix.CAP_SETPCAP: "CAP_SETPCAP", unix.CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE",
	unix.CAP_SYS_CHROOT: "CAP_SYS_CHROOT", unix.CAP_KILL: "CAP_KILL", unix.CAP_AUDIT_WRITE: "CAP_AUDIT_WRITE",
	unix.CAP_SYS_BOOT: "CAP_SYS_BOOT", unix.CAP_NET_ADMIN: "CAP_NET_ADMIN",
}

type allowRule struct {
	name string
	sets [][]argCond // nil: unconditional
}

// mobyAllowed turns Docker's default seccomp profile, resolved for the
// capabilities the installer keeps, into allow rules. Rules whose argument
// checks cannot be expressed here are left out (denied), never widened.
func mobyAllowed() ([]allowRule, error) {
	var caps []string
	for _, c := range keptCaps {
		caps = append(caps, capNames[c])
	}
	prof, err := mobyseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{
		Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}}})
	if err != nil {
		return nil, err
	}
	if prof == nil || prof.DefaultAction != specs.ActErrno {
		return nil, fmt.Errorf("unexpected profile")
	}
	unconditional := map[string]bool{}
	conditional := map[string][][]argCond{}
	for _, sc := range prof.Syscalls {
		if sc.Action != specs.ActAllow {
			continue
		}
		conds, ok := translateArgs(sc.Args)
		if !ok {
			continue
		}
		for _, name := range sc.Names {
			if len(conds) == 0 {
				unconditional[name] = true
			} else {
				conditional[name] = append(conditional[name], conds)
			}
		}
	}
	var out []allowRule
	for name := range unconditional {
		out = append(out, allowRule{name: name})
	}
	for name, sets := range conditional {
		if !unconditional[name] {
			out = append(out, allowRule{name: name, sets: sets})
		}
	}
	slices.SortFunc(out, func(a, b allowRule) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func translateArgs(args []specs.LinuxSeccompArg) ([]argCond, bool) {
	var out []argCond
	for _, a := range args {
		c := argCond{arg: int(a.Index), val: a.Value}
		switch {
		case a.Op == specs.OpEqualTo:
			c.op = opEq
		case a.Op == specs.OpNotEqual:
			c.op = opNe
		case a.Op == specs.OpLessThan:
			c.op = opLt
		case a.Op == specs.OpMaskedEqual && a.ValueTwo == 0:
			c.op = opMaskZero
		default:
			return nil, false
		}
		out = append(out, c)
	}
	return out, true
}
