package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// guestBytes is a connection whose guest side is fixed bytes: what the
// host writes is thrown away.
type guestBytes struct {
	io.Reader
	io.Writer
}

func frame(typ string, body any) []byte {
	var b bytes.Buffer
	if err := writeFrame(&b, typ, body); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func rawFrame(body string) []byte {
	b := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	copy(b[4:], body)
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var okResult = frame(tResult, RunResult{ExitCode: 0, Findings: []Finding{}})

func runAgainst(t *testing.T, guest []byte) (*RunResult, []Output, error) {
	t.Helper()
	c := NewClient(guestBytes{bytes.NewReader(guest), io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var outs []Output
	res, err := c.Run(ctx, RunRequest{Installer: "x.sh", Timeout: time.Minute}, func(o Output) { outs = append(outs, o) })
	return res, outs, err
}

// TestClientRefusesHostileGuest: each malformed, truncated, oversized or
// out-of-order guest message is refused with a clear error (T2).
func TestClientRefusesHostileGuest(t *testing.T) {
	now := time.Now().UTC()
	out := func(stream string, data string) []byte {
		return frame(tOutput, Output{Time: now, Stream: stream, Data: []byte(data)})
	}
	tests := []struct {
		name  string
		guest []byte
		want  string // in the error
		gone  bool   // the error is ErrGuestGone
	}{
		{"oversized frame", cat([]byte{0x7f, 0xff, 0xff, 0xff}, []byte("{}")), "over the 1048576-byte limit", false},
		{"empty frame", []byte{0, 0, 0, 0}, "empty frame", false},
		{"truncated length", []byte{0, 0}, "truncated", true},
		{"truncated body", cat([]byte{0, 0, 1, 0}, []byte(`{"type":"res`)), "truncated", true},
		{"not JSON", rawFrame("hello there"), "malformed frame", false},
		{"invalid UTF-8", rawFrame("{\"type\":\"output\xff\"}"), "not valid UTF-8", false},
		{"trailing data", rawFrame(`{"type":"result","body":{"exit_code":0,"findings":[]}} {}`), "trailing data", false},
		{"unknown field", rawFrame(`{"type":"result","body":{"exit_code":0,"findings":[],"evil":1}}`), "unknown field", false},
		{"unknown type", frame("exec", map[string]string{"cmd": "rm -rf /"}), `unexpected "exec"`, false},
		{"wrong order: ok during run", frame(tOK, nil), `unexpected "ok"`, false},
		{"wrong order: hello during run", frame(tHello, Hello{Version: 1, OS: "linux", Arch: "amd64"}), `unexpected "hello"`, false},
		{"no type", rawFrame(`{"body":{}}`), "no type", false},
		{"result without body", rawFrame(`{"type":"result"}`), "has no body", false},
		{"unknown stream", out("stdin", "x"), `unknown stream "stdin"`, false},
		{"untimed output", frame(tOutput, Output{Stream: "stdout", Data: []byte("x")}), "no time", false},
		{"oversized chunk", out("stdout", strings.Repeat("x", ChunkSize+1)), "over", false},
		{"unknown rule", frame(tResult, RunResult{Findings: []Finding{{Rule: "X9", Message: "m"}}}), `unknown rule "X9"`, false},
		{"empty finding", frame(tResult, RunResult{Findings: []Finding{{Rule: "I4"}}}), "message must be", false},
		{"huge message", frame(tResult, RunResult{Findings: []Finding{{Rule: "I4", Message: strings.Repeat("m", maxMessage+1)}}}), "message must be", false},
		{"too many findings", frame(tResult, RunResult{Findings: make([]Finding, MaxFindings+1)}), "findings, more than", false},
		{"exit code out of range", frame(tResult, RunResult{ExitCode: -7, Findings: []Finding{}}), "exit code -7", false},
		{"negative dropped", frame(tResult, RunResult{OutputDropped: -1, Findings: []Finding{}}), "dropped", false},
		{"bad power verb", frame(tPower, PowerEvent{Time: now, Command: "reboot", Verb: "explode"}), `unknown verb "explode"`, false},
		{"end before result", out("stdout", "hi\n"), "went away", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := runAgainst(t, tt.guest)
			if err == nil {
				t.Fatalf("Run accepted it: %+v", res)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if errors.Is(err, ErrGuestGone) != tt.gone {
				t.Errorf("errors.Is(%v, ErrGuestGone) = %v, want %v", err, !tt.gone, tt.gone)
			}
		})
	}
}

// TestClientBrokenAfterProtocolError: once the guest broke the protocol
// the session cannot be trusted; later calls fail without reading.
func TestClientBrokenAfterProtocolError(t *testing.T) {
	c := NewClient(guestBytes{bytes.NewReader(cat(frame("bogus", nil), okResult)), io.Discard})
	ctx := context.Background()
	if _, err := c.Run(ctx, RunRequest{Installer: "x.sh", Timeout: time.Minute}, nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("first Run: %v, want ErrProtocol", err)
	}
	if _, err := c.Run(ctx, RunRequest{Installer: "x.sh", Timeout: time.Minute}, nil); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("second Run: %v, want unusable", err)
	}
}

// TestClientCapsOutput: a flood of output keeps MaxOutputKept bytes, notes
// the drop once, and counts the rest.
func TestClientCapsOutput(t *testing.T) {
	now := time.Now().UTC()
	chunk := frame(tOutput, Output{Time: now, Stream: "stdout", Data: bytes.Repeat([]byte("y"), ChunkSize)})
	n := MaxOutputKept/ChunkSize + 8
	var guest []byte
	for i := 0; i < n; i++ {
		guest = append(guest, chunk...)
	}
	guest = append(guest, okResult...)
	res, outs, err := runAgainst(t, guest)
	if err != nil {
		t.Fatal(err)
	}
	var kept int64
	notes := 0
	for _, o := range outs {
		if o.Stream == "pib" {
			notes++
			continue
		}
		kept += int64(len(o.Data))
	}
	if kept != MaxOutputKept || notes != 1 || res.OutputDropped != 8*ChunkSize {
		t.Errorf("kept %d (want %d), notes %d (want 1), dropped %d (want %d)", kept, MaxOutputKept, notes, res.OutputDropped, 8*ChunkSize)
	}
}

// TestGuestGoneNamesPowerEvent: a guest that reports a reboot command and
// then disappears gives ErrGuestGone carrying the power event (I5 on the
// VM side).
func TestGuestGoneNamesPowerEvent(t *testing.T) {
	guest := cat(frame(tPower, PowerEvent{Time: time.Now().UTC(), Command: "shutdown -r now", Verb: "reboot"}), []byte{0, 0, 0})
	_, _, err := runAgainst(t, guest)
	var gone *GuestGoneError
	if !errors.Is(err, ErrGuestGone) || !errors.As(err, &gone) || gone.Power == nil || gone.Power.Command != "shutdown -r now" {
		t.Fatalf("err = %v, want ErrGuestGone with the power event", err)
	}
	if !strings.Contains(err.Error(), "shutdown -r now") {
		t.Errorf("error does not name the command: %v", err)
	}
}

// TestClientContext: a guest that never answers cannot hang the host.
func TestClientContext(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	c := NewClient(guestBytes{r, io.Discard})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Hello(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Hello = %v after %s, want a deadline error soon", err, time.Since(start))
	}
}

// TestHelloVersion: a guest of another protocol version is refused.
func TestHelloVersion(t *testing.T) {
	c := NewClient(guestBytes{bytes.NewReader(frame(tHello, Hello{Version: 2, OS: "linux", Arch: "amd64"})), io.Discard})
	if _, err := c.Hello(context.Background()); err == nil || !strings.Contains(err.Error(), "protocol version 2") {
		t.Errorf("Hello: %v", err)
	}
}

// FuzzClientFrames feeds arbitrary bytes as the guest's side of a Run: the
// host must return (a result or an error), never panic or hang.
func FuzzClientFrames(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Add(okResult)
	f.Add(cat(frame(tOutput, Output{Time: now, Stream: "stdout", Data: []byte("hi\n")}), okResult))
	f.Add(cat(frame(tPower, PowerEvent{Time: now, Command: "reboot", Verb: "reboot"}), frame(tResult, RunResult{ExitCode: -1, Findings: []Finding{{Rule: "I5", Message: "m"}}})))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(rawFrame(`{"type":"output","body":{"time":"x"}}`))
	f.Fuzz(func(t *testing.T, guest []byte) {
		c := NewClient(guestBytes{bytes.NewReader(guest), io.Discard})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := c.Run(ctx, RunRequest{Installer: "x.sh", Timeout: time.Minute}, func(o Output) {
			if err := o.validate(); err != nil {
				t.Errorf("an invalid output reached the caller: %v", err)
			}
		})
		if (res == nil) == (err == nil) {
			t.Fatalf("Run returned %v and %v", res, err)
		}
		if err != nil && ctx.Err() != nil {
			t.Fatalf("Run hung until the deadline: %v", err)
		}
		if res != nil {
			if verr := res.validate(); verr != nil {
				t.Errorf("an invalid result reached the caller: %v", verr)
			}
			// The result must survive a round trip unchanged.
			if _, err := json.Marshal(res); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestClientWriteContext: a guest that stops reading cannot hang the host
// in a write either; the connection is closed and the Client is unusable.
func TestClientWriteContext(t *testing.T) {
	host, guest := net.Pipe() // synchronous: a write waits for a reader
	defer guest.Close()
	c := NewClient(host)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Put(ctx, "f", 0o644, 10, strings.NewReader("0123456789"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Put = %v after %s, want a deadline error soon", err, time.Since(start))
	}
	if _, err := c.Hello(context.Background()); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("Hello after an abandoned Put: %v, want unusable", err)
	}
	if _, err := host.Write([]byte{0}); err == nil {
		t.Error("the abandoned connection is still open")
	}
}
