// Package power recognises an installer's reboot, halt and power-off
// attempts (I5) the same way for every backend: the sandbox's init and the
// VM guest agent put the same wrapper scripts first in the installer's
// PATH and word the same findings.
package power

import (
	"fmt"
	"strings"
)

// reportAndStop is the body of reboot, halt, poweroff, shutdown: tell the
// watcher, then never return (the installer stops there, as it would on a
// real reboot).
func reportAndStop(fifo string) string {
	return `echo "${0##*/} $*" > ` + fifo + `
exec sleep 2147483647
`
}

const execReal = `for d in /usr/sbin /usr/bin /sbin /bin; do
	[ -x "$d/$name" ] && exec "$d/$name" "$@"
done
echo "$name: not found" >&2
exit 127
`

// Wrappers returns the wrapper scripts by command name, each reporting one
// line ("command args") to fifo; systemctl, init and telinit pass every
// other use on to the real program.
func Wrappers(fifo string) map[string]string {
	stop := reportAndStop(fifo)
	m := map[string]string{
		"reboot":   stop,
		"halt":     stop,
		"poweroff": stop,
		"shutdown": `case " $* " in *" -c "*|*" -k "*) exit 0;; esac
` + stop,
		"telinit": `case "$1" in 0|6) ;; *) name=telinit; ` + "\n" + execReal + `;; esac
` + stop,
		"init": `case "$1" in 0|6) ;; *) name=init; ` + "\n" + execReal + `;; esac
` + stop,
		"systemctl": `for a in "$@"; do
	case "$a" in reboot|halt|poweroff|kexec|soft-reboot|reboot.target|halt.target|poweroff.target|kexec.target)
		echo "systemctl $*" > ` + fifo + `
		exec sleep 2147483647;;
	esac
done
name=systemctl
` + execReal,
	}
	for name, body := range m {
		m[name] = "#!/bin/sh\n# pib: reboot attempts are recorded (I5)\n" + body
	}
	return m
}

// Verb tells what a command line asks for: "reboot", "halt" or "power off".
func Verb(cmdline string) string {
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

// Ran words what the installer tried, from the line a wrapper reported:
// "reboot the system (it ran `reboot`)".
func Ran(cmdline string) string {
	return fmt.Sprintf("%s the system (it ran `%s`)", Verb(cmdline), cmdline)
}

// Message is the I5 finding's message for what (from Ran).
func Message(what string) string {
	return fmt.Sprintf("the installer tried to %s; installers must never reboot, halt or power off", what)
}
