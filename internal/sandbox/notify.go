//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// seccompNotif and seccompNotifResp mirror the kernel's struct
// seccomp_notif and struct seccomp_notif_resp.
type seccompNotif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// attempts collects the denied calls of reportedSyscalls.
type attempts struct {
	mu    sync.Mutex
	calls map[string][]string // syscall → "pid N: cmdline" (first few)
	count map[string]int
}

// watchSeccomp receives the listener fd from the exec stage over sock and
// answers every notification with EPERM, noting who tried what.
func (s *sandboxInit) watchSeccomp(sock *os.File) *attempts {
	a := &attempts{calls: map[string][]string{}, count: map[string]int{}}
	names := map[int]string{}
	if info, err := arch.GetInfo(""); err == nil {
		for n, nr := range info.SyscallNames {
			names[nr] = n
		}
	}
	go func() {
		buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, 0)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return
		}
		fd := fds[0]
		defer unix.Close(fd)
		for {
			var n seccompNotif
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n)))
			if e == unix.EINTR || e == unix.ENOENT {
				continue
			}
			if e != 0 {
				return
			}
			name := names[int(n.Nr)]
			if name == "" {
				name = fmt.Sprintf("syscall %d", n.Nr)
			}
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n.PID))
			a.mu.Lock()
			a.count[name]++
			if len(a.calls[name]) < 3 {
				a.calls[name] = append(a.calls[name], fmt.Sprintf("pid %d: %s", n.PID, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))))
			}
			a.mu.Unlock()
			s.log.note("denied %s(2) to pid %d", name, n.PID)
			resp := seccompNotifResp{ID: n.ID, Error: -int32(unix.EPERM)}
			unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
		}
	}()
	return a
}

func (a *attempts) findings() []Finding {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for n := range a.count {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Finding
	for _, n := range names {
		if n == "mknod" || n == "mknodat" {
			out = append(out, Finding{Rule: "T1",
				Message: fmt.Sprintf("the installer tried to create a device node (%s(2), %d time(s)), which the sandbox denies; builds reach no device but null, zero, full, random, urandom and tty, and an image must not ship device nodes", n, a.count[n]),
				Detail:  strings.Join(a.calls[n], "\n")})
			continue
		}
		out = append(out, Finding{Rule: "sandbox",
			Message: fmt.Sprintf("the installer tried %s(2) %d time(s), which the sandbox denies; installers must not mount file systems, load kernel modules, change the clock, trace other processes or leave the sandbox", n, a.count[n]),
			Detail:  strings.Join(a.calls[n], "\n")})
	}
	return out
}
