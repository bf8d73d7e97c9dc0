package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"
)

// ErrGuestGone is wrapped by the error Client.Run returns when the
// connection ended while the installer was running: the guest reset,
// powered off or the agent died. The VM backend turns it into an I5
// finding (QEMU runs with -no-reboot, so a reboot ends the VM).
var ErrGuestGone = errors.New("the guest went away while the installer was running")

// GuestGoneError is the error Run returns for ErrGuestGone; Power is the
// last power event the guest sent before it went (nil if none came).
type GuestGoneError struct {
	Power *PowerEvent
	Err   error // what the read failed with
}

func (e *GuestGoneError) Error() string {
	s := ErrGuestGone.Error()
	if e.Power != nil {
		s += fmt.Sprintf(" (it had just run `%s`)", e.Power.Command)
	}
	return s + ": " + e.Err.Error()
}

func (e *GuestGoneError) Is(target error) bool { return target == ErrGuestGone }
func (e *GuestGoneError) Unwrap() error        { return e.Err }

// Client is the host side of one agent session. Every byte from the guest
// is treated as hostile (T2): frames are size-checked before allocation,
// decoded strictly, validated per type and in order, and output kept is
// capped at MaxOutputKept. Its methods must not be called concurrently.
// After any error but a refusal reported by the guest, the Client is
// broken and every later call fails: the session state is unknown.
type Client struct {
	conn io.ReadWriter

	startReader sync.Once
	frames      chan frameOrErr
	readErr     error // the reader's last word, once it has stopped
	broken      error
}

type frameOrErr struct {
	env *envelope
	err error
}

// NewClient starts a session over conn (the host end of the virtio-serial
// port). If conn is an io.Closer, a cancelled context closes it, since a
// read or write in flight cannot be abandoned otherwise.
func NewClient(conn io.ReadWriter) *Client {
	return &Client{conn: conn, frames: make(chan frameOrErr, 1)}
}

// reader reads frames into c.frames until the first error. The channel
// holds one frame, so at most two frames (2*MaxFrame) are held at once.
func (c *Client) reader() {
	for {
		env, err := readFrame(c.conn)
		c.frames <- frameOrErr{env, err}
		if err != nil {
			return
		}
	}
}

func (c *Client) fail(err error) error {
	if c.broken == nil {
		c.broken = err
	}
	return err
}

func (c *Client) abandon(ctx context.Context) error {
	if cl, ok := c.conn.(io.Closer); ok {
		cl.Close()
	}
	return c.fail(fmt.Errorf("agent session abandoned: %w", ctx.Err()))
}

// next waits for the guest's next frame.
func (c *Client) next(ctx context.Context) (*envelope, error) {
	c.startReader.Do(func() { go c.reader() })
	if c.readErr != nil {
		return nil, c.readErr
	}
	select {
	case f := <-c.frames:
		if f.err != nil {
			// The reader has stopped: later calls get the same error.
			c.readErr = f.err
			return nil, f.err
		}
		return f.env, nil
	case <-ctx.Done():
		return nil, c.abandon(ctx)
	}
}

// send writes one frame, giving up when ctx ends (a guest that stops
// reading must not hang the host).
func (c *Client) send(ctx context.Context, typ string, body any) error {
	done := make(chan error, 1)
	go func() { done <- writeFrame(c.conn, typ, body) }()
	select {
	case err := <-done:
		if err != nil {
			return c.fail(fmt.Errorf("send %s to the guest agent: %w", typ, err))
		}
		return nil
	case <-ctx.Done():
		return c.abandon(ctx)
	}
}

func (c *Client) check() error {
	if c.broken != nil {
		return fmt.Errorf("agent session is unusable after an earlier error: %w", c.broken)
	}
	return nil
}

// lost wraps an I/O error reading from the guest outside of Run.
func (c *Client) lost(what string, err error) error {
	if errors.Is(err, ErrProtocol) {
		return c.fail(fmt.Errorf("%s: %w", what, err))
	}
	return c.fail(fmt.Errorf("%s: the connection to the guest agent was lost: %w", what, err))
}

// expectOK waits for ok or error; a guest error is a refusal that leaves
// the session usable only when usable is true.
func (c *Client) expectOK(ctx context.Context, what string) error {
	env, err := c.next(ctx)
	if err != nil {
		return c.lost(what, err)
	}
	switch env.Type {
	case tOK:
		if len(env.Body) != 0 {
			return c.fail(protoErr("%s: ok message with a body", what))
		}
		return nil
	case tError:
		var e errorBody
		if err := decodeBody(env, &e); err != nil {
			return c.fail(err)
		}
		// A refusal leaves the session usable: the guest discarded the request.
		return fmt.Errorf("%s: the guest agent refused: %s", what, truncate(e.Message, maxMessage))
	}
	return c.fail(protoErr("%s: want ok or error, the guest sent %q", what, truncate(env.Type, 16)))
}

// Hello asks the guest who it is and checks it speaks ProtocolVersion.
func (c *Client) Hello(ctx context.Context) (*Hello, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := c.send(ctx, tHello, Hello{Version: ProtocolVersion}); err != nil {
		return nil, err
	}
	env, err := c.next(ctx)
	if err != nil {
		return nil, c.lost("hello", err)
	}
	if env.Type == tError {
		var e errorBody
		if err := decodeBody(env, &e); err != nil {
			return nil, c.fail(err)
		}
		return nil, c.fail(fmt.Errorf("hello: the guest agent refused: %s", truncate(e.Message, maxMessage)))
	}
	if env.Type != tHello {
		return nil, c.fail(protoErr("hello: want hello, the guest sent %q", truncate(env.Type, 16)))
	}
	var h Hello
	if err := decodeBody(env, &h); err != nil {
		return nil, c.fail(err)
	}
	if err := h.validate(); err != nil {
		return nil, c.fail(err)
	}
	return &h, nil
}

// Put sends one file into the guest's staging directory (name is a base name, no separators).
func (c *Client) Put(ctx context.Context, name string, mode fs.FileMode, size int64, r io.Reader) error {
	if err := c.check(); err != nil {
		return err
	}
	if err := validName(name); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if size < 0 || size > MaxFileSize {
		return fmt.Errorf("put %s: size %d is outside 0..%d", name, size, int64(MaxFileSize))
	}
	what := "put " + name
	if err := c.send(ctx, tPut, putHeader{Name: name, Mode: uint32(mode.Perm()), Size: size}); err != nil {
		return err
	}
	if err := c.expectOK(ctx, what); err != nil {
		return err
	}
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	var sent int64
	for sent < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-sent)])
		if n > 0 {
			h.Write(buf[:n])
			if err := c.send(ctx, tData, dataChunk{Data: buf[:n]}); err != nil {
				return err
			}
			sent += int64(n)
		}
		if err != nil && sent < size {
			// The guest holds a partial file: the session cannot go on.
			return c.fail(fmt.Errorf("%s: read the file after %d of %d bytes: %w", what, sent, size, err))
		}
	}
	if err := c.send(ctx, tPutEnd, putEnd{SHA256: hex.EncodeToString(h.Sum(nil))}); err != nil {
		return err
	}
	return c.expectOK(ctx, what)
}

// Run runs the installer; onOutput gets each chunk as it arrives (may be nil).
// Output past MaxOutputKept is dropped (counted in RunResult.OutputDropped,
// with one "pib" note to onOutput). When the connection ends before the
// result, the error wraps ErrGuestGone (see GuestGoneError).
func (c *Client) Run(ctx context.Context, req RunRequest, onOutput func(Output)) (*RunResult, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := validName(req.Installer); err != nil {
		return nil, fmt.Errorf("run: installer: %w", err)
	}
	if req.Timeout <= 0 {
		return nil, fmt.Errorf("run %s: a time limit (I7) is required", req.Installer)
	}
	if err := c.send(ctx, tRun, req); err != nil {
		return nil, err
	}
	var kept, dropped int64
	var power *PowerEvent
	for {
		env, err := c.next(ctx)
		if err != nil {
			if errors.Is(err, ErrProtocol) || ctx.Err() != nil {
				return nil, c.fail(fmt.Errorf("run %s: %w", req.Installer, err))
			}
			return nil, c.fail(&GuestGoneError{Power: power, Err: err})
		}
		switch env.Type {
		case tOutput:
			var o Output
			if err := decodeBody(env, &o); err != nil {
				return nil, c.fail(err)
			}
			if err := o.validate(); err != nil {
				return nil, c.fail(err)
			}
			if kept+int64(len(o.Data)) > MaxOutputKept {
				if dropped == 0 && onOutput != nil {
					onOutput(Output{Time: time.Now().UTC(), Stream: "pib",
						Data: []byte(fmt.Sprintf("output limit (%d bytes) reached: further installer output is dropped", MaxOutputKept))})
				}
				dropped += int64(len(o.Data))
				continue
			}
			kept += int64(len(o.Data))
			if onOutput != nil {
				onOutput(o)
			}
		case tPower:
			var p PowerEvent
			if err := decodeBody(env, &p); err != nil {
				return nil, c.fail(err)
			}
			if err := p.validate(); err != nil {
				return nil, c.fail(err)
			}
			power = &p
		case tResult:
			var res RunResult
			if err := decodeBody(env, &res); err != nil {
				return nil, c.fail(err)
			}
			if err := res.validate(); err != nil {
				return nil, c.fail(err)
			}
			if res.OutputDropped > MaxFileSize || dropped > MaxFileSize {
				return nil, c.fail(protoErr("result claims an impossible amount of dropped output"))
			}
			res.OutputDropped += dropped
			return &res, nil
		case tError:
			var e errorBody
			if err := decodeBody(env, &e); err != nil {
				return nil, c.fail(err)
			}
			return nil, fmt.Errorf("run %s: the guest agent could not run it: %s", req.Installer, truncate(e.Message, maxMessage))
		default:
			return nil, c.fail(protoErr("run: unexpected %q message while the installer runs", truncate(env.Type, 16)))
		}
	}
}

// Shutdown asks the guest to sync and power off; it returns when the guest acknowledged.
func (c *Client) Shutdown(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	if err := c.send(ctx, tShutdown, nil); err != nil {
		return err
	}
	return c.expectOK(ctx, "shutdown")
}
