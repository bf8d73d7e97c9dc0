//go:build linux

package sandbox

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/power"
)

// I5: the usual reboot commands are shadowed by wrappers first in PATH that
// report to the init through a FIFO; the systemctl and init wrappers pass
// every other use on to the real program. A reboot(2) call is seen by Run
// from the init's death signal instead.

const powerFIFO = pibRunDir + "/power"

func writePowerWrappers() error {
	if err := unix.Mkfifo(powerFIFO, 0o622); err != nil {
		return err
	}
	for name, body := range power.Wrappers(powerFIFO) {
		if err := os.WriteFile(pibRunDir+"/bin/"+name, []byte(body), 0o755); err != nil {
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
				c <- power.Ran(line)
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
