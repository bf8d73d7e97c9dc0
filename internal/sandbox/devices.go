//go:build linux

package sandbox

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// deviceFilter returns the cgroup v2 device program that enforces
// allowedDevices: cgroup v2 has no devices controller, the kernel asks a
// BPF_PROG_TYPE_CGROUP_DEVICE program instead, as runc and crun do.
//
// The program reads struct bpf_cgroup_dev_ctx { u32 access_type (access
// << 16 | type); u32 major; u32 minor; } and returns 1 to allow, 0 to deny.
func deviceFilter() asm.Instructions {
	const (
		devChar     = 2 // BPF_DEVCG_DEV_CHAR
		accessMknod = 1 // BPF_DEVCG_ACC_MKNOD
	)
	// r4 = major<<20 | minor: one 32-bit key per device (minors are 20
	// bits; the allowed majors are small).
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // access_type
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.And.Imm(asm.R3, 0xffff), // device type
		asm.RSh.Imm(asm.R2, 16),     // access
		asm.LoadMem(asm.R4, asm.R1, 4, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, 8, asm.Word),
		asm.JNE.Imm(asm.R3, devChar, "deny"),
		asm.JSet.Imm(asm.R2, accessMknod, "deny"),
		asm.LSh.Imm(asm.R4, 20),
		asm.Or.Reg(asm.R4, asm.R5),
	}
	for _, d := range allowedDevices {
		insns = append(insns, asm.JEq.Imm(asm.R4, int32(d.major<<20|d.minor), "allow"))
	}
	return append(insns,
		asm.Mov.Imm(asm.R0, 0).WithSymbol("deny"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("allow"),
		asm.Return(),
	)
}

// attachDeviceFilter loads the device program and attaches it to the v2
// cgroup dir; closing the returned link detaches it.
func attachDeviceFilter(dir string) (link.Link, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "pib_devices",
		Type:         ebpf.CGroupDevice,
		Instructions: deviceFilter(),
		License:      "Apache-2.0",
	})
	if err != nil {
		return nil, fmt.Errorf("load the build's device filter (cgroup v2 BPF): %w", err)
	}
	defer prog.Close() // the link keeps it
	l, err := link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: ebpf.AttachCGroupDevice, Program: prog})
	if err != nil {
		return nil, fmt.Errorf("attach the build's device filter to %s: %w", dir, err)
	}
	return l, nil
}
