//go:build linux

package netwatch

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
