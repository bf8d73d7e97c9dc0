package sandbox

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// I5: the usual reboot commands are shadowed by wrappers first in PATH that
// report to the init through a FIFO; the systemctl and init wrappers pass
// every other use on to the real program. A reboot(2) call is seen by Run
// from the init's death signal instead.

const powerFIFO = pibRunDir + "/power"

const reportAndStop = `echo "${0##*/} $*" > ` + powerFIFO + `
exec sleep 2147483647
`

const execReal = `for d in /usr/sbin /usr/bin /sbin /bin; do
	[ -x "$d/$name" ] && exec "$d/$name" "$@"
done
echo "$name: not found" >&2
exit 127
`

var powerWrappers = map[string]string{
	"reboot":   reportAndStop,
	"halt":     reportAndStop,
	"poweroff": reportAndStop,
	"shutdown": `case " $* " in *" -c "*|*" -k "*) exit 0;; esac
` + reportAndStop,
	"telinit": `case "$1" in 0|6) ;; *) name=telinit; ` + "\n" + execReal + `;; esac
` + reportAndStop,
	"init": `case "$1" in 0|6) ;; *) name=init; ` + "\n" + execReal + `;; esac
` + reportAndStop,
	"systemctl": `for a in "$@"; do
	case "$a" in reboot|halt|poweroff|kexec|soft-reboot|reboot.target|halt.target|poweroff.target|kexec.target)
		echo "systemctl $*" > ` + powerFIFO + `
		exec sleep 2147483647;;
	esac
done
name=systemctl
` + execReal,
}

func writePowerWrappers() error {
	if err := unix.Mkfifo(powerFIFO, 0o622); err != nil {
		return err
	}
	for name, body := range powerWrappers {
		if err := os.WriteFile(pibRunDir+"/bin/"+name, []byte("#!/bin/sh\n# pib: reboot attempts are recorded (I5)\n"+body), 0o755); err != nil {
			return err
		}
	}
	// sysvinit-style requests (what systemctl's halt/reboot fall back to
	// when systemd is not running) arrive on /run/initctl.
	return unix.Mkfifo("/run/initctl", 0o600)
}

// startPowerWatch reports each attempt as "reboot the system (ran `…`)".
func startPowerWatch(s *sandboxInit) <-chan string {
	c := make(chan string, 4)
	if f, err := os.OpenFile(powerFIFO, os.O_RDWR, 0); err == nil {
		go func() {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				c <- fmt.Sprintf("%s the system (it ran `%s`)", powerVerb(line), line)
			}
		}()
	} else {
		s.log.note("cannot watch reboot commands: %v", err)
	}
	if f, err := os.OpenFile("/run/initctl", os.O_RDWR, 0); err == nil {
		go func() {
			// struct init_request: magic, cmd, runlevel, sleeptime, data[368].
			var req [384]byte
			for {
				if _, err := io.ReadFull(f, req[:]); err != nil {
					return
				}
				if binary.NativeEndian.Uint32(req[0:]) != 0x03091969 {
					continue
				}
				switch rl := binary.NativeEndian.Uint32(req[8:]); rl {
				case '0':
					c <- "power off the system (runlevel 0 requested on /run/initctl)"
				case '6':
					c <- "reboot the system (runlevel 6 requested on /run/initctl)"
				}
			}
		}()
	}
	return c
}

func powerVerb(cmdline string) string {
	f := strings.Fields(cmdline)
	if len(f) == 0 {
		return "reboot"
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	args := " " + strings.Join(f[1:], " ") + " "
	switch {
	case name == "halt", strings.Contains(args, " halt"), strings.Contains(args, " -H "):
		return "halt"
	case name == "poweroff", strings.Contains(args, " poweroff"), strings.Contains(args, " -P "),
		(name == "init" || name == "telinit") && strings.TrimSpace(args) == "0",
		name == "shutdown" && !strings.Contains(args, " -r"):
		return "power off"
	}
	return "reboot"
}
