//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// keptCaps is Docker's default capability set without CAP_MKNOD, plus
// CAP_SYS_BOOT: with it, reboot(2) reaches only the build's PID namespace,
// which is how I5 sees it; and CAP_NET_ADMIN, so that a routing or
// firewall change is seen and reported (I6) rather than merely refused.
// All of them are capabilities of the build's user namespace (T1): they act
// on the build's own files, network and processes, never on the host's.
// Everything a package manager needs (chown, setuid/setgid, fowner,
// dac_override) is kept; CAP_MKNOD is not (an image has no device nodes to
// make, T1–T2, and mknod of a device fails in a user namespace anyway);
// CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME,
// CAP_SYS_PTRACE… are not.
var keptCaps = []uint{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER,
	unix.CAP_NET_RAW, unix.CAP_SETGID, unix.CAP_SETUID,
	unix.CAP_SETFCAP, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE, unix.CAP_SYS_BOOT, unix.CAP_NET_ADMIN,
}

// reportedSyscalls are what an installer has no business calling: ways out
// of the sandbox or into the kernel. Each call fails with EPERM and is
// reported as a "sandbox" finding (through a seccomp user notification the
// init answers). Most would fail anyway for want of a capability; the
// filter makes the attempt visible.
var reportedSyscalls = []string{
	"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"swapon", "swapoff", "unshare", "setns", "open_by_handle_at",
	"iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "ptrace",
	"process_vm_readv", "process_vm_writev",
}

// deniedSyscalls fail with EPERM silently: they widen the kernel surface
// but ordinary tools probe them (keyrings, perf, bpf…).
var deniedSyscalls = []string{
	"bpf", "perf_event_open", "add_key", "request_key", "keyctl", "userfaultfd", "name_to_handle_at",
	"acct", "quotactl", "syslog", "lookup_dcookie", "vhangup",
}

// runExec is the last step before the installer: drop capabilities, load
// the seccomp filters, exec. Everything happens on one locked thread
// because capabilities are per thread and execve keeps the caller's.
func runExec() {
	runtime.LockOSThread()
	// Until the exec the process is the pib binary: keep the installer's
	// other processes out of its /proc entries (exec resets this).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "pib: cannot start the installer: "+format+"\n", args...)
		os.Exit(126)
	}
	if len(os.Args) < 2 {
		fail("no command")
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envExec+"=") {
			env = append(env, kv)
		}
	}
	path := os.Args[1]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			fail("%v", err)
		}
		path = p
	}
	// fd 3 is a socket to the init. Its first byte says we are in the
	// installer's cgroup; then it takes the seccomp listener.
	sock := os.NewFile(3, "init")
	var b [1]byte
	if n, _ := sock.Read(b[:]); n != 1 {
		fail("the sandbox init did not let the installer start")
	}
	// Now in its own cgroup: a cgroup namespace rooted there shows the
	// installer "/" in /proc/self/cgroup instead of the host's cgroup
	// paths. It holds for the exec below because this thread execs.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		fail("cgroup namespace: %v", err)
	}
	// The init is exempt from the OOM killer; the installer must not be.
	os.WriteFile("/proc/self/oom_score_adj", []byte("0"), 0)
	err := loadSeccomp(sock)
	sock.Close()
	if err != nil {
		fail("seccomp: %v", err)
	}
	if err := dropCaps(); err != nil {
		fail("drop capabilities: %v", err)
	}
	err = syscall.Exec(path, os.Args[1:], env)
	fail("exec %s: %v", path, err)
}

func dropCaps() error {
	keep := map[uint]bool{}
	for _, c := range keptCaps {
		keep[c] = true
	}
	lastCap := uint(unix.CAP_LAST_CAP)
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		fmt.Sscan(string(b), &lastCap)
	}
	for c := uint(0); c <= lastCap; c++ {
		if !keep[c] {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
				return fmt.Errorf("bounding set: cap %d: %w", c, err)
			}
		}
	}
	unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	var data [2]unix.CapUserData
	for _, c := range keptCaps {
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
		data[c/32].Inheritable |= 1 << (c % 32)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	return unix.Capset(&hdr, &data[0])
}

func loadSeccomp(notify *os.File) error {
	info, err := arch.GetInfo("")
	if err != nil {
		return err
	}
	const (
		notifyAction = unix.SECCOMP_RET_USER_NOTIF
		eperm        = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys       = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	var rules []seccompRule
	covered := map[string]bool{}
	add := func(name string, action uint32, sets [][]argCond) {
		if n, ok := info.SyscallNames[name]; ok && !covered[name] {
			rules = append(rules, seccompRule{nr: uint32(n), sets: sets, action: action})
			if sets == nil {
				covered[name] = true
			}
		}
	}
	for _, name := range reportedSyscalls {
		add(name, notifyAction, nil)
	}
	// clone(2) creating namespaces (a new user namespace needs no
	// capability) is refused and reported.
	const cloneNS = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
		unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	add("clone", notifyAction, [][]argCond{{{arg: 0, op: opMaskAnySet, val: cloneNS}}})
	// mknod of a device (S_IFCHR, and S_IFBLK which contains its bit) is
	// refused and reported (T1): FIFOs and sockets stay possible.
	const deviceBit = unix.S_IFCHR
	add("mknod", notifyAction, [][]argCond{{{arg: 1, op: opMaskAnySet, val: deviceBit}}})
	add("mknodat", notifyAction, [][]argCond{{{arg: 2, op: opMaskAnySet, val: deviceBit}}})
	// clone3's flags sit in memory a filter cannot read: ENOSYS makes libc
	// fall back to clone(2), which is checked above (as Docker does).
	add("clone3", enosys, nil)
	for _, name := range deniedSyscalls {
		add(name, eperm, nil)
	}
	// Then Docker's default profile as an allow list, so that syscalls it
	// does not know (new kernel interfaces) fail too.
	def := uint32(eperm)
	allowed, err := mobyAllowed()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pib: Docker's seccomp profile is unavailable (%v); using pib's deny lists only\n", err)
		def = unix.SECCOMP_RET_ALLOW
	}
	for _, a := range allowed {
		add(a.name, unix.SECCOMP_RET_ALLOW, a.sets)
	}
	prog, err := assembleSeccomp(rules, def)
	if err != nil {
		return err
	}
	// No TSYNC: the filter needs to hold only on this thread, which execs.
	// Not setting no_new_privs keeps setuid programs (sudo, su) working.
	fd, err := seccompFilter(prog, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER)
	if err != nil {
		return err
	}
	err = unix.Sendmsg(int(notify.Fd()), []byte{0}, unix.UnixRights(fd), nil, 0)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("hand the notification fd to the init: %w", err)
	}
	return nil
}

// seccompFilter installs a raw BPF program on the calling thread and
// returns what seccomp(2) returned (a listener fd with NEW_LISTENER).
func seccompFilter(prog []bpf.RawInstruction, flags uintptr) (int, error) {
	raw := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		raw[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: &raw[0]}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
