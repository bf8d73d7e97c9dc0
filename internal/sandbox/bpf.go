//go:build linux

package sandbox

import (
	"fmt"
	"runtime"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A small seccomp BPF assembler. (go-seccomp-bpf's assembler leaves an
// argument in the accumulator after a failed argument check and compares it
// as a syscall number from then on, so it cannot mix argument checks with a
// long allow list; its syscall tables are still used.)

// seccompRule: when the syscall is nr and any one of the condition sets
// holds entirely (or there is none), return action.
type seccompRule struct {
	nr     uint32
	sets   [][]argCond
	action uint32
}

type argOp int

const (
	opEq         argOp = iota // arg == val
	opNe                      // arg != val
	opMaskZero                // arg & val == 0
	opMaskAnySet              // arg & val != 0
	opLt                      // arg < val, unsigned
)

type argCond struct {
	arg int
	op  argOp
	val uint64
}

// offsets in struct seccomp_data
const (
	sdNr   = 0
	sdArch = 4
	sdArgs = 16
)

func auditArch() (uint32, error) {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64, nil
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64, nil
	}
	return 0, fmt.Errorf("no seccomp support for %s", runtime.GOARCH)
}

// assembleSeccomp compiles rules (first match wins) into a filter program:
// another architecture (32-bit compat calls) is killed, x32 calls fail with
// ENOSYS, and calls matching no rule get def.
func assembleSeccomp(rules []seccompRule, def uint32) ([]bpf.RawInstruction, error) {
	archID, err := auditArch()
	if err != nil {
		return nil, err
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: sdArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: archID, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
		bpf.LoadAbsolute{Off: sdNr, Size: 4},
	}
	if runtime.GOARCH == "amd64" {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x40000000, SkipFalse: 1},
			bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})
	}
	for _, r := range rules {
		if len(r.sets) == 0 {
			prog = append(prog,
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: r.nr, SkipFalse: 1},
				bpf.RetConstant{Val: r.action})
			continue
		}
		var block []bpf.Instruction
		for _, set := range r.sets {
			block = append(block, condSet(set, r.action)...)
		}
		// The checks load arguments into the accumulator: reload the
		// syscall number before the next rule.
		block = append(block, bpf.LoadAbsolute{Off: sdNr, Size: 4})
		if len(block) > 255 {
			return nil, fmt.Errorf("syscall %d: too many argument checks", r.nr)
		}
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: r.nr, SkipTrue: uint8(len(block))})
		prog = append(prog, block...)
	}
	prog = append(prog, bpf.RetConstant{Val: def})
	return bpf.Assemble(prog)
}

// condSet returns instructions that return action when every condition
// holds and otherwise fall through to what follows them.
func condSet(set []argCond, action uint32) []bpf.Instruction {
	const fail = 0xff // placeholder skip, resolved below
	var ins []bpf.Instruction
	var failJumps []int // index of the JumpIf and whether its true or false branch fails
	var failOnTrue []bool
	hiOff := func(a int) uint32 { return uint32(sdArgs + 8*a + 4) } // little endian
	loOff := func(a int) uint32 { return uint32(sdArgs + 8*a) }
	for _, c := range set {
		hi, lo := uint32(c.val>>32), uint32(c.val)
		switch c.op {
		case opEq:
			ins = append(ins, bpf.LoadAbsolute{Off: hiOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, false)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipFalse: fail})
			ins = append(ins, bpf.LoadAbsolute{Off: loOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, false)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpEqual, Val: lo, SkipFalse: fail})
		case opNe:
			ins = append(ins, bpf.LoadAbsolute{Off: hiOff(c.arg), Size: 4})
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipFalse: 2}) // hi differs: holds
			ins = append(ins, bpf.LoadAbsolute{Off: loOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, true)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpEqual, Val: lo, SkipTrue: fail})
		case opMaskZero:
			ins = append(ins, bpf.LoadAbsolute{Off: hiOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, true)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: hi, SkipTrue: fail})
			ins = append(ins, bpf.LoadAbsolute{Off: loOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, true)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: lo, SkipTrue: fail})
		case opLt:
			ins = append(ins, bpf.LoadAbsolute{Off: hiOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, true)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: hi, SkipTrue: fail})
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpEqual, Val: hi, SkipFalse: 2}) // hi below: holds
			ins = append(ins, bpf.LoadAbsolute{Off: loOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, true)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: lo, SkipTrue: fail})
		case opMaskAnySet:
			ins = append(ins, bpf.LoadAbsolute{Off: hiOff(c.arg), Size: 4})
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: hi, SkipTrue: 2}) // set in hi: holds
			ins = append(ins, bpf.LoadAbsolute{Off: loOff(c.arg), Size: 4})
			failJumps, failOnTrue = append(failJumps, len(ins)), append(failOnTrue, false)
			ins = append(ins, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: lo, SkipFalse: fail})
		}
	}
	ins = append(ins, bpf.RetConstant{Val: action})
	end := len(ins) // first instruction after the set
	for k, i := range failJumps {
		j := ins[i].(bpf.JumpIf)
		skip := uint8(end - (i + 1))
		if failOnTrue[k] {
			j.SkipTrue = skip
		} else {
			j.SkipFalse = skip
		}
		ins[i] = j
	}
	return ins
}
