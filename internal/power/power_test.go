package power

import (
	"strings"
	"testing"
)

func TestVerb(t *testing.T) {
	for cmd, want := range map[string]string{
		"reboot": "reboot", "shutdown -r now": "reboot", "shutdown now": "power off", "shutdown -h now": "power off",
		"halt": "halt", "poweroff": "power off", "init 6": "reboot", "init 0": "power off", "systemctl poweroff": "power off",
		"systemctl reboot": "reboot", "telinit 0": "power off",
	} {
		if got := Verb(cmd); got != want {
			t.Errorf("Verb(%q) = %q, want %q", cmd, got, want)
		}
	}
}

func TestWrappersReportToFIFO(t *testing.T) {
	w := Wrappers("/run/x/power")
	for _, name := range []string{"reboot", "halt", "poweroff", "shutdown", "telinit", "init", "systemctl"} {
		if !strings.Contains(w[name], "> /run/x/power") || !strings.HasPrefix(w[name], "#!/bin/sh\n") {
			t.Errorf("wrapper %s does not report to the FIFO:\n%s", name, w[name])
		}
	}
}
