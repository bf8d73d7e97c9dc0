package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Runner is the OS-specific part of the guest agent (runner_linux.go,
// runner_windows.go).
type Runner interface {
	// Dir is the staging directory Put writes into and the installer runs in.
	Dir() string
	// Run runs the installer (a base name in Dir) unattended with stdin
	// closed, reports output and power events through ev as they happen,
	// enforces req.Timeout (I7) and returns the exit status and the
	// findings (I1–I7) once the installer and everything it started are
	// gone. An error means the agent could not do its job (not a rule).
	Run(ctx context.Context, req RunRequest, ev Events) (*RunResult, error)
	// PowerOff syncs the file systems and powers the guest off. Serve calls
	// it after it acknowledged a Shutdown and removed Dir.
	PowerOff() error
}

// Events receives what happens while the installer runs. Both functions
// are safe to call from several goroutines.
type Events struct {
	Output func(Output)
	Power  func(PowerEvent)
}

type server struct {
	conn io.ReadWriter
	r    Runner
	wmu  sync.Mutex
	// put is the file being received, if any.
	put *incoming
}

type incoming struct {
	hdr  putHeader
	f    *os.File
	tmp  string
	n    int64
	hash hash.Hash
}

// Serve answers one host session over conn: hello, puts, runs, and a
// shutdown, after which it powers the guest off with r.PowerOff and
// returns. It returns nil when the host closes the connection cleanly
// between requests, and an error on a protocol violation or ctx's end.
func Serve(ctx context.Context, conn io.ReadWriter, r Runner) (err error) {
	s := &server{conn: conn, r: r}
	defer func() {
		// A session that failed is over: the host must see the end at
		// once rather than wait for a reply that never comes.
		if c, ok := conn.(io.Closer); ok && err != nil {
			c.Close()
		}
	}()
	frames := make(chan frameOrErr)
	go func() {
		for {
			env, err := readFrame(conn)
			select {
			case frames <- frameOrErr{env, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer s.abortPut()
	for {
		var f frameOrErr
		select {
		case f = <-frames:
		case <-ctx.Done():
			return fmt.Errorf("agent stopped: %w", ctx.Err())
		}
		if f.err != nil {
			if errors.Is(f.err, io.EOF) {
				if s.put == nil {
					return nil
				}
				return fmt.Errorf("the host closed the connection in the middle of put %s: the file was discarded", s.put.hdr.Name)
			}
			return fmt.Errorf("read from the host: %w", f.err)
		}
		done, err := s.handle(ctx, f.env)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func (s *server) send(typ string, body any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return writeFrame(s.conn, typ, body)
}

func (s *server) refuse(format string, args ...any) error {
	return s.send(tError, errorBody{Message: truncate(fmt.Sprintf(format, args...), maxMessage-8)})
}

// handle answers one frame; done is true after a shutdown.
func (s *server) handle(ctx context.Context, env *envelope) (done bool, err error) {
	if s.put != nil && env.Type != tData && env.Type != tPutEnd {
		return false, protoErr("%s message in the middle of a put", truncate(env.Type, 16))
	}
	switch env.Type {
	case tHello:
		var h Hello
		if err := decodeBody(env, &h); err != nil {
			return false, err
		}
		if h.Version != ProtocolVersion {
			return false, s.refuse("this agent speaks protocol version %d, the host %d", ProtocolVersion, h.Version)
		}
		return false, s.send(tHello, Hello{Version: ProtocolVersion, OS: runtime.GOOS, Arch: runtime.GOARCH})
	case tPut:
		var h putHeader
		if err := decodeBody(env, &h); err != nil {
			return false, err
		}
		return false, s.startPut(h)
	case tData:
		var d dataChunk
		if err := decodeBody(env, &d); err != nil {
			return false, err
		}
		if s.put == nil {
			return false, protoErr("data message outside a put")
		}
		if len(d.Data) > ChunkSize || s.put.n+int64(len(d.Data)) > s.put.hdr.Size {
			return false, protoErr("put %s: more data than the %d bytes announced", s.put.hdr.Name, s.put.hdr.Size)
		}
		if _, err := s.put.f.Write(d.Data); err != nil {
			// The host streams on without waiting for answers, so a refusal
			// could not be matched to its request: end the session.
			return false, fmt.Errorf("write %s: %w (free space in the guest's staging directory)", s.put.tmp, err)
		}
		s.put.hash.Write(d.Data)
		s.put.n += int64(len(d.Data))
		return false, nil
	case tPutEnd:
		var e putEnd
		if err := decodeBody(env, &e); err != nil {
			return false, err
		}
		return false, s.endPut(e)
	case tRun:
		var req RunRequest
		if err := decodeBody(env, &req); err != nil {
			return false, err
		}
		return false, s.run(ctx, req)
	case tShutdown:
		if len(env.Body) != 0 {
			return false, protoErr("shutdown message with a body")
		}
		// The staging directory never reaches the image (the layer is the
		// disk's difference against the base).
		if err := os.RemoveAll(s.r.Dir()); err != nil {
			return false, s.refuse("remove the staging directory: %v", err)
		}
		if err := s.send(tOK, nil); err != nil {
			return false, err
		}
		if err := s.r.PowerOff(); err != nil {
			return true, fmt.Errorf("power off: %w", err)
		}
		return true, nil
	}
	return false, protoErr("unknown message type %q", truncate(env.Type, 16))
}

func (s *server) startPut(h putHeader) error {
	if err := validName(h.Name); err != nil {
		return s.refuse("put: %v", err)
	}
	if h.Size < 0 || h.Size > MaxFileSize {
		return s.refuse("put %s: size %d is outside 0..%d", h.Name, h.Size, int64(MaxFileSize))
	}
	if err := os.MkdirAll(s.r.Dir(), 0o755); err != nil {
		return s.refuse("put %s: %v", h.Name, err)
	}
	f, err := os.CreateTemp(s.r.Dir(), ".put-*")
	if err != nil {
		return s.refuse("put %s: %v", h.Name, err)
	}
	s.put = &incoming{hdr: h, f: f, tmp: f.Name(), hash: sha256.New()}
	return s.send(tOK, nil)
}

func (s *server) abortPut() {
	if s.put != nil {
		s.put.f.Close()
		os.Remove(s.put.tmp)
		s.put = nil
	}
}

func (s *server) endPut(e putEnd) error {
	if s.put == nil {
		return protoErr("put_end message outside a put")
	}
	p := s.put
	refusal := s.finishPut(p, e)
	// The temporary file is gone before the host hears the answer.
	s.abortPut()
	if refusal != "" {
		return s.refuse("put %s: %s", p.hdr.Name, refusal)
	}
	return s.send(tOK, nil)
}

// finishPut checks the received file and moves it into place; it returns
// why not, for the host.
func (s *server) finishPut(p *incoming, e putEnd) string {
	if p.n != p.hdr.Size {
		return fmt.Sprintf("got %d bytes, %d were announced", p.n, p.hdr.Size)
	}
	if got := hex.EncodeToString(p.hash.Sum(nil)); got != e.SHA256 {
		return fmt.Sprintf("SHA-256 mismatch (got %s, want %s): send it again", got, truncate(e.SHA256, 64))
	}
	if err := p.f.Chmod(fs.FileMode(p.hdr.Mode) & 0o777); err != nil {
		return err.Error()
	}
	if err := p.f.Close(); err != nil {
		return err.Error()
	}
	if err := os.Rename(p.tmp, filepath.Join(s.r.Dir(), p.hdr.Name)); err != nil {
		return err.Error()
	}
	return ""
}

// run runs one installer, sending output as it comes (up to MaxOutputKept)
// and the result at the end.
func (s *server) run(ctx context.Context, req RunRequest) error {
	if err := validName(req.Installer); err != nil {
		return s.refuse("run: %v", err)
	}
	if req.Timeout <= 0 {
		return s.refuse("run %s: a time limit (I7) is required", req.Installer)
	}
	if _, err := os.Stat(filepath.Join(s.r.Dir(), req.Installer)); err != nil {
		return s.refuse("run %s: %v (send it with Put first)", req.Installer, err)
	}
	var mu sync.Mutex
	var sent, dropped int64
	var sendErr error
	ev := Events{
		Output: func(o Output) {
			mu.Lock()
			defer mu.Unlock()
			for len(o.Data) > 0 {
				chunk := o
				chunk.Data = o.Data[:min(len(o.Data), ChunkSize)]
				o.Data = o.Data[len(chunk.Data):]
				if sent+int64(len(chunk.Data)) > MaxOutputKept {
					if dropped == 0 {
						s.send(tOutput, Output{Time: time.Now().UTC(), Stream: "pib",
							Data: []byte(fmt.Sprintf("output limit (%d bytes) reached: further installer output is dropped", MaxOutputKept))})
					}
					dropped += int64(len(chunk.Data))
					continue
				}
				sent += int64(len(chunk.Data))
				if err := s.send(tOutput, chunk); err != nil && sendErr == nil {
					sendErr = err
				}
			}
		},
		Power: func(p PowerEvent) {
			// Best effort: the guest may go down right after.
			s.send(tPower, p)
		},
	}
	res, err := s.r.Run(ctx, req, ev)
	if err != nil && ctx.Err() != nil {
		// The agent is being stopped mid-run: in a guest, init stops it
		// because the system is going down (the installer ran a real
		// reboot, e.g. by absolute path). Tell the host, and end the
		// session as the guest will: the host reports it as I5, not as
		// an agent failure.
		p := PowerEvent{Time: time.Now().UTC(), Verb: "reboot", Inferred: true,
			Command: "(not seen: the guest's init stopped the agent while the installer ran; the system is going down)"}
		if sd, ok := s.r.(interface{ ShutdownVerb() string }); ok {
			if v := sd.ShutdownVerb(); v != "" {
				p.Verb = v
			}
		}
		s.send(tPower, p)
		return fmt.Errorf("stopped while the installer ran: %w", err)
	}
	if err != nil {
		return s.refuse("run %s: %v", req.Installer, err)
	}
	mu.Lock()
	res.OutputDropped += dropped
	err = sendErr
	mu.Unlock()
	if err != nil {
		return fmt.Errorf("send output to the host: %w", err)
	}
	res.Findings = fitFindings(res.Findings)
	if err := s.send(tResult, res); err != nil {
		// Findings full of characters JSON escapes can still overflow: keep
		// the rules and messages, drop the details.
		for i := range res.Findings {
			res.Findings[i].Detail = ""
		}
		return s.send(tResult, res)
	}
	return nil
}

// note writes one of the agent's own lines into the build log (I8), on
// the "pib" stream, so the log says which I3 path ran.
func note(ev Events, format string, args ...any) {
	if ev.Output != nil {
		ev.Output(Output{Time: time.Now().UTC(), Stream: "pib", Data: []byte(fmt.Sprintf(format, args...))})
	}
}
