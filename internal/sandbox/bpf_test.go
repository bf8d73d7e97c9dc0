package sandbox

import (
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestAssembleSeccomp runs the assembled filter in x/net/bpf's VM on
// seccomp_data records.
func TestAssembleSeccomp(t *testing.T) {
	arch, err := auditArch()
	if err != nil {
		t.Skip(err)
	}
	const allow, deny, notify = unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ERRNO | 1, unix.SECCOMP_RET_USER_NOTIF
	rules := []seccompRule{
		{nr: 10, action: notify},
		{nr: 20, action: notify, sets: [][]argCond{{{arg: 0, op: opMaskAnySet, val: 0x10000000}}}},
		{nr: 20, action: allow, sets: [][]argCond{{{arg: 0, op: opMaskZero, val: 0x7e020000}}}},
		{nr: 30, action: allow, sets: [][]argCond{{{arg: 0, op: opLt, val: 5}}, {{arg: 0, op: opEq, val: 40}}}},
		{nr: 40, action: allow, sets: [][]argCond{{{arg: 1, op: opNe, val: 7}, {arg: 2, op: opEq, val: 1 << 33}}}},
		{nr: 50, action: allow},
	}
	raw, err := assembleSeccomp(rules, deny)
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range raw {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		nr   uint32
		args [6]uint64
		want uint32
	}{
		{10, [6]uint64{}, notify},
		{20, [6]uint64{0x10000000 | 17}, notify},
		{20, [6]uint64{17}, allow},
		{20, [6]uint64{0x00020000}, deny},
		{30, [6]uint64{4}, allow},
		{30, [6]uint64{5}, deny},
		{30, [6]uint64{1 << 32}, deny},
		{30, [6]uint64{40}, allow},
		{40, [6]uint64{0, 7, 1 << 33}, deny},
		{40, [6]uint64{0, 8, 1 << 33}, allow},
		{40, [6]uint64{0, 7 | 1<<32, 1 << 33}, allow},
		{40, [6]uint64{0, 8, 1}, deny},
		{50, [6]uint64{}, allow},
		{60, [6]uint64{}, deny},
	}
	for _, tt := range tests {
		data := make([]byte, 64)
		// The VM loads big-endian words; seccomp_data is native
		// (little-endian): store each 32-bit word byte-swapped.
		put := func(off int, v uint32) {
			data[off], data[off+1], data[off+2], data[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		put(0, tt.nr)
		put(4, arch)
		for i, a := range tt.args {
			put(16+8*i, uint32(a))
			put(16+8*i+4, uint32(a>>32))
		}
		got, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		if uint32(got) != tt.want {
			t.Errorf("nr %d args %x: got %#x, want %#x", tt.nr, tt.args[:3], got, tt.want)
		}
	}
}
