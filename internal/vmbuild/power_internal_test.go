package vmbuild

import (
	"errors"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/agent"
)

// TestPowerFinding: the I5 finding names the command the agent saw; for
// an inferred power event or none, the kernel's console line (hostile
// text: control bytes dropped, bounded).
func TestPowerFinding(t *testing.T) {
	console := []byte("[  1.0] systemd[1]: Stopping...\r\n[ 42.1] reboot: Restarting system\x1b[31m" + strings.Repeat("x", 500) + "\r\n")
	cases := []struct {
		name       string
		gone       *agent.GuestGoneError
		console    []byte
		msg, notIn string
	}{
		{"command seen", &agent.GuestGoneError{Power: &agent.PowerEvent{Command: "shutdown -r now", Verb: "reboot"}, Err: errors.New("EOF")}, console, "ran `shutdown -r now`", ""},
		{"inferred", &agent.GuestGoneError{Power: &agent.PowerEvent{Command: "agent stopped by init", Verb: "reboot", Inferred: true}, Err: errors.New("EOF")}, console, "restarted the system", "ran `"},
		{"no event, restart", &agent.GuestGoneError{Err: errors.New("EOF")}, console, "restarted the system", ""},
		{"no event, power down", nil, []byte("reboot: Power down\n"), "powered off", ""},
		{"nothing on the console", nil, []byte("login:"), "went away", ""},
	}
	for _, c := range cases {
		f := powerFinding(c.gone, c.console)
		if f.Rule != "I5" || !strings.Contains(f.Message, c.msg) || (c.notIn != "" && strings.Contains(f.Message, c.notIn)) {
			t.Errorf("%s: %+v, want I5 mentioning %q", c.name, f, c.msg)
		}
		if strings.ContainsAny(f.Message+f.Detail, "\x1b\r") || len(f.Detail) > 700 {
			t.Errorf("%s: the detail carries control bytes or is unbounded: %q", c.name, f.Detail)
		}
	}
}
