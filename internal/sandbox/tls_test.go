package sandbox

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

func TestTLSSNI(t *testing.T) {
	c, s := net.Pipe()
	go func() {
		tls.Client(c, &tls.Config{ServerName: "downloads.example.com"}).Handshake()
	}()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16<<10)
	n, err := s.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := tlsSNI(buf[:n]); got != "downloads.example.com" {
		t.Errorf("tlsSNI = %q, want downloads.example.com", got)
	}
	c.Close()
	s.Close()
}

func TestPowerVerb(t *testing.T) {
	for cmd, want := range map[string]string{
		"reboot": "reboot", "shutdown -r now": "reboot", "shutdown now": "power off", "shutdown -h now": "power off",
		"halt": "halt", "poweroff": "power off", "init 6": "reboot", "init 0": "power off", "systemctl poweroff": "power off",
		"systemctl reboot": "reboot", "telinit 0": "power off",
	} {
		if got := powerVerb(cmd); got != want {
			t.Errorf("powerVerb(%q) = %q, want %q", cmd, got, want)
		}
	}
}
