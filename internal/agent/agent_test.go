package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// session starts Serve with runner over net.Pipe and returns the host's
// Client; the serve error is checked at cleanup.
func session(t *testing.T, r Runner) *Client {
	t.Helper()
	return sessionWant(t, r, "")
}

// sessionWant is session where Serve must end with an error containing
// wantErr ("" for none).
func sessionWant(t *testing.T, r Runner, wantErr string) *Client {
	t.Helper()
	host, guest := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, guest, r) }()
	t.Cleanup(func() {
		host.Close()
		select {
		case err := <-done:
			switch {
			case wantErr == "" && err != nil:
				t.Errorf("Serve: %v", err)
			case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
				t.Errorf("Serve returned %v, want an error containing %q", err, wantErr)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after the host closed the connection")
		}
		cancel()
	})
	return NewClient(host)
}

// putFile sends a file from disk into the guest.
func putFile(t *testing.T, c *Client, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Put(ctx, filepath.Base(path), st.Mode(), st.Size(), f); err != nil {
		t.Fatalf("Put %s: %v", path, err)
	}
}

type collected struct {
	mu  sync.Mutex
	out []Output
}

func (c *collected) add(o Output) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, o)
}

func (c *collected) text(stream string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, o := range c.out {
		if o.Stream == stream {
			b.Write(o.Data)
		}
	}
	return b.String()
}

func hasFinding(fs []Finding, rule, substr string) bool {
	for _, f := range fs {
		if f.Rule == rule && (strings.Contains(f.Message, substr) || strings.Contains(f.Detail, substr)) {
			return true
		}
	}
	return false
}

func sandboxScript(name string) string { return filepath.Join("..", "sandbox", "testdata", name) }

// fakeRunner is a Runner for protocol tests: run plays the installer.
type fakeRunner struct {
	dir string
	run func(ctx context.Context, req RunRequest, ev Events) (*RunResult, error)
}

func (f *fakeRunner) Dir() string { return f.dir }
func (f *fakeRunner) Run(ctx context.Context, req RunRequest, ev Events) (*RunResult, error) {
	if f.run == nil {
		return nil, errors.New("no installer in this test")
	}
	return f.run(ctx, req, ev)
}
func (f *fakeRunner) PowerOff() error { return errors.New("a test must not power off") }

// powerOffRecorder stands in for the real power-off (which would stop the
// test machine) and records that Serve called it.
type powerOffRecorder struct {
	Runner
	mu     sync.Mutex
	called bool
}

func (p *powerOffRecorder) PowerOff() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.called = true
	return nil
}

func (p *powerOffRecorder) wasCalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.called
}

func TestHelloPutShutdown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "build")
	r := &powerOffRecorder{Runner: &fakeRunner{dir: dir}}
	c := session(t, r)
	ctx := context.Background()
	h, err := c.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != ProtocolVersion || h.OS == "" || h.Arch == "" {
		t.Errorf("hello = %+v", h)
	}
	// A file of several chunks arrives whole, with its mode.
	data := make([]byte, 3*ChunkSize+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := c.Put(ctx, "big.bin", 0o750, int64(len(data)), strings.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "big.bin"))
	if err != nil || string(got) != string(data) {
		t.Fatalf("staged file differs (%d bytes, err %v)", len(got), err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "big.bin")); st.Mode().Perm() != 0o750 {
		t.Errorf("mode %v, want 0750", st.Mode().Perm())
	}
	// A reader shorter than the announced size breaks the session.
	c2 := sessionWant(t, &powerOffRecorder{Runner: &fakeRunner{dir: filepath.Join(t.TempDir(), "b")}}, "middle of put short")
	if err := c2.Put(ctx, "short", 0o644, 100, strings.NewReader("abc")); err == nil || !strings.Contains(err.Error(), "3 of 100") {
		t.Errorf("short put: %v", err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Serve powers off right after its acknowledgement.
	for deadline := time.Now().Add(5 * time.Second); !r.wasCalled(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Shutdown did not power the guest off")
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging directory left after Shutdown: %v", err)
	}
}

func TestPutRefusesBadNames(t *testing.T) {
	c := session(t, &powerOffRecorder{Runner: &fakeRunner{dir: t.TempDir()}})
	for _, name := range []string{"../x", "a/b", "..", "", "a\nb", `a\b`} {
		if err := c.Put(context.Background(), name, 0o644, 1, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) succeeded", name)
		}
	}
}

// TestServeRefuses: requests the guest cannot honour are refused and the
// session goes on; frames that break the protocol end it.
func TestServeRefuses(t *testing.T) {
	c := session(t, &powerOffRecorder{Runner: &fakeRunner{dir: t.TempDir()}})
	ctx := context.Background()
	if _, err := c.Run(ctx, RunRequest{Installer: "missing.sh", Timeout: time.Minute}, nil); err == nil || !strings.Contains(err.Error(), "send it with Put first") {
		t.Errorf("Run of a file never sent: %v", err)
	}
	if _, err := c.Hello(ctx); err != nil {
		t.Errorf("the session broke after a refusal: %v", err)
	}

	for name, raw := range map[string][]byte{
		"unknown type":          frame("exec", nil),
		"data outside a put":    frame(tData, dataChunk{Data: []byte("x")}),
		"put_end outside a put": frame(tPutEnd, putEnd{SHA256: "00"}),
		"oversized":             {0x10, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			host, guest := net.Pipe()
			defer host.Close()
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, guest, &fakeRunner{dir: t.TempDir()}) }()
			go host.Write(raw)
			select {
			case err := <-done:
				if !errors.Is(err, ErrProtocol) {
					t.Errorf("Serve = %v, want ErrProtocol", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not end")
			}
		})
	}
}

// TestPutChecksum: a file whose bytes do not match the SHA-256 the host
// sends is refused and not staged.
func TestPutChecksum(t *testing.T) {
	dir := t.TempDir()
	host, guest := net.Pipe()
	defer host.Close()
	go Serve(context.Background(), guest, &fakeRunner{dir: dir})
	// Serve reads without waiting for us, so plain sequential writes do.
	writeFrame(host, tPut, putHeader{Name: "f", Mode: 0o644, Size: 3})
	if env, err := readFrame(host); err != nil || env.Type != tOK {
		t.Fatalf("put: %+v %v", env, err)
	}
	writeFrame(host, tData, dataChunk{Data: []byte("abc")})
	writeFrame(host, tPutEnd, putEnd{SHA256: strings.Repeat("0", 64)})
	env, err := readFrame(host)
	if err != nil || env.Type != tError || !strings.Contains(string(env.Body), "SHA-256 mismatch") {
		t.Fatalf("reply %+v %v, want a SHA-256 refusal", env, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bad file was staged: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// TestStoppedMidRun: an agent stopped while the installer runs (in a guest:
// init stopping it for a real reboot) sends a power event and ends the
// session, so the host sees ErrGuestGone with it, not an agent error.
func TestStoppedMidRun(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.sh"), []byte("#!/bin/sh\n"), 0o755)
	started := make(chan struct{})
	r := &fakeRunner{dir: dir, run: func(ctx context.Context, req RunRequest, ev Events) (*RunResult, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	host, guest := net.Pipe()
	defer host.Close()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, guest, r) }()
	go func() { <-started; stop() }()
	_, err := NewClient(host).Run(context.Background(), RunRequest{Installer: "x.sh", Timeout: time.Minute}, nil)
	var gone *GuestGoneError
	if !errors.As(err, &gone) || gone.Power == nil || !gone.Power.Inferred || !strings.Contains(gone.Power.Command, "init stopped the agent") {
		t.Fatalf("Run = %v, want ErrGuestGone with the agent's power event", err)
	}
	if err := <-served; err == nil {
		t.Error("Serve returned nil after being stopped mid-run")
	}
}
