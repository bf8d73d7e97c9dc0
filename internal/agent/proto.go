package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// ProtocolVersion is sent in the hello; a host refuses a guest of another version.
const ProtocolVersion = 1

// Limits of the protocol. Every frame is checked against MaxFrame before a
// byte of its body is allocated, so a hostile peer cannot make the other
// side allocate more than MaxFrame per frame.
const (
	// MaxFrame is the largest frame body either side accepts.
	MaxFrame = 1 << 20
	// ChunkSize is the largest file or output chunk in one frame; base64 in
	// JSON makes it 4/3 larger, well below MaxFrame.
	ChunkSize = 256 << 10
	// MaxFileSize bounds one file sent with Put.
	MaxFileSize = 16 << 30
	// MaxOutputKept is how much installer output one Run keeps (both the
	// guest's sending and the host's keeping stop there, with a note).
	MaxOutputKept = 16 << 20
	// MaxFindings bounds the findings of one RunResult.
	MaxFindings = 256
	// maxMessage and maxDetail bound the text of one finding.
	maxMessage = 4 << 10
	maxDetail  = 64 << 10
)

// Finding is one broken rule, same fields as sandbox.Finding.
type Finding struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// Hello is what the guest agent says first.
type Hello struct {
	Version int    `json:"version"`
	OS      string `json:"os"` // "linux" or "windows" (runtime.GOOS of the agent)
	Arch    string `json:"arch"`
}

// RunRequest asks the guest to run one installer.
type RunRequest struct {
	Installer string        `json:"installer"` // base name of a file sent with Put
	Timeout   time.Duration `json:"timeout"`   // I7; the guest enforces it, the host enforces it + a margin
}

// Output is one chunk of installer output, timestamped by the guest.
type Output struct {
	Time time.Time `json:"time"`
	// Stream is "stdout" or "stderr", or "pib" for a line of the agent's
	// own (no trailing newline: one chunk, one line or message).
	Stream string `json:"stream"`
	Data   []byte `json:"data"`
}

// PowerEvent is sent by the guest as soon as it sees the installer ask for
// a reboot, halt or power-off (I5), before the guest may go down.
type PowerEvent struct {
	Time    time.Time `json:"time"`
	Command string    `json:"command"` // what the installer ran, e.g. "shutdown -r now"
	Verb    string    `json:"verb"`    // "reboot", "halt" or "power off"
	// Inferred is true when no wrapper saw a command: init stopped the
	// agent mid-run because the system is going down; Command then
	// describes that, and the guest's console says more.
	Inferred bool `json:"inferred,omitempty"`
}

// RunResult is what the guest reports when the installer is done.
type RunResult struct {
	ExitCode int       `json:"exit_code"` // -1 when it did not exit on its own
	Signal   string    `json:"signal,omitempty"`
	Findings []Finding `json:"findings"` // I1 I2 I3 I4 I5 I6 (and I7) as seen in the guest
	// OutputDropped counts the bytes of installer output past MaxOutputKept
	// that were not kept (host side: the sum of what the guest said it
	// dropped and what the host dropped itself).
	OutputDropped int64 `json:"output_dropped,omitempty"`
}

// Message types. Host to guest: hello, put, data, put_end, run, shutdown.
// Guest to host: hello, ok, error, output, power, result.
const (
	tHello    = "hello"
	tPut      = "put"
	tData     = "data"
	tPutEnd   = "put_end"
	tRun      = "run"
	tShutdown = "shutdown"
	tOK       = "ok"
	tError    = "error"
	tOutput   = "output"
	tPower    = "power"
	tResult   = "result"
)

// envelope is one frame's JSON body.
type envelope struct {
	Type string          `json:"type"`
	Body json.RawMessage `json:"body,omitempty"`
}

type putHeader struct {
	Name string `json:"name"`
	Mode uint32 `json:"mode"`
	Size int64  `json:"size"`
}

type dataChunk struct {
	Data []byte `json:"data"`
}

type putEnd struct {
	SHA256 string `json:"sha256"` // lowercase hex
}

type errorBody struct {
	Message string `json:"message"`
}

// ErrProtocol is wrapped by every error about a malformed or unexpected
// frame from the peer.
var ErrProtocol = errors.New("agent protocol violation")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// writeFrame writes one frame: a 4-byte big-endian length, then the JSON
// envelope.
func writeFrame(w io.Writer, typ string, body any) error {
	env := envelope{Type: typ}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s message: %w", typ, err)
		}
		env.Body = b
	}
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", typ, err)
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("%s message of %d bytes is over the %d-byte frame limit", typ, len(b), MaxFrame)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// errTruncated marks a frame cut short by the end of the stream.
var errTruncated = errors.New("frame truncated by the end of the stream")

// readFrame reads one frame. An I/O error (including io.EOF before the
// first byte) is returned as is; everything else wrong with the frame
// wraps ErrProtocol.
func readFrame(r io.Reader) (*envelope, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %w", errTruncated, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, protoErr("empty frame")
	}
	if n > MaxFrame {
		return nil, protoErr("frame of %d bytes is over the %d-byte limit", n, MaxFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %w", errTruncated, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	// JSON text must be UTF-8 (RFC 8259); Go's decoder would quietly
	// replace bad bytes, so refuse them here.
	if !utf8.Valid(body) {
		return nil, protoErr("frame is not valid UTF-8")
	}
	var env envelope
	if err := strictUnmarshal(body, &env); err != nil {
		return nil, protoErr("malformed frame: %v", err)
	}
	if env.Type == "" {
		return nil, protoErr("frame has no type")
	}
	return &env, nil
}

// strictUnmarshal decodes exactly one JSON value with no unknown fields.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// decodeBody decodes env's body into v, strictly.
func decodeBody(env *envelope, v any) error {
	if len(env.Body) == 0 {
		return protoErr("%s message has no body", env.Type)
	}
	if err := strictUnmarshal(env.Body, v); err != nil {
		return protoErr("malformed %s message: %v", env.Type, err)
	}
	return nil
}

// validName tells whether name is a plain base name fit for the staging
// directory: no separators, no control characters, not a dot name.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return fmt.Errorf("file name %q: want a base name of 1 to 255 bytes", name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("file name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if r == '/' || r == '\\' || r == ':' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("file name %q: no path separators, colons or control characters", name)
		}
	}
	return nil
}

func validRule(rule string) bool {
	switch rule {
	case "I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "limits":
		return true
	}
	return false
}

// validate checks a RunResult from the guest before the host uses it.
func (r *RunResult) validate() error {
	if r.ExitCode < -1 || int64(r.ExitCode) > 1<<32 {
		return protoErr("result exit code %d out of range", r.ExitCode)
	}
	if len(r.Signal) > 32 {
		return protoErr("result signal name is %d bytes long", len(r.Signal))
	}
	if len(r.Findings) > MaxFindings {
		return protoErr("result has %d findings, more than %d", len(r.Findings), MaxFindings)
	}
	if r.OutputDropped < 0 {
		return protoErr("result says %d bytes of output were dropped", r.OutputDropped)
	}
	for i, f := range r.Findings {
		if !validRule(f.Rule) {
			return protoErr("finding %d has unknown rule %q", i, truncate(f.Rule, 16))
		}
		if f.Message == "" || len(f.Message) > maxMessage || len(f.Detail) > maxDetail {
			return protoErr("finding %d: message must be 1 to %d bytes and detail at most %d", i, maxMessage, maxDetail)
		}
	}
	return nil
}

func (o *Output) validate() error {
	switch o.Stream {
	case "stdout", "stderr", "pib":
	default:
		return protoErr("output on unknown stream %q", truncate(o.Stream, 16))
	}
	if len(o.Data) > ChunkSize {
		return protoErr("output chunk of %d bytes is over %d", len(o.Data), ChunkSize)
	}
	if o.Time.IsZero() {
		return protoErr("output chunk has no time")
	}
	return nil
}

func (p *PowerEvent) validate() error {
	switch p.Verb {
	case "reboot", "halt", "power off":
	default:
		return protoErr("power event with unknown verb %q", truncate(p.Verb, 16))
	}
	if p.Command == "" || len(p.Command) > maxMessage {
		return protoErr("power event command must be 1 to %d bytes", maxMessage)
	}
	return nil
}

func (h *Hello) validate() error {
	if h.Version != ProtocolVersion {
		return fmt.Errorf("guest agent speaks protocol version %d, this host speaks %d: install the same pib version in the base image", h.Version, ProtocolVersion)
	}
	switch h.OS {
	case "linux", "windows":
	default:
		return protoErr("hello from unknown OS %q", truncate(h.OS, 16))
	}
	if h.Arch == "" || len(h.Arch) > 16 {
		return protoErr("hello arch must be 1 to 16 bytes")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fitFindings trims finding texts so a RunResult fits in one frame.
func fitFindings(fs []Finding) []Finding {
	if len(fs) > MaxFindings {
		fs = append(fs[:MaxFindings-1:MaxFindings-1], Finding{Rule: fs[MaxFindings-1].Rule, Message: fmt.Sprintf("%d more findings were left out", len(fs)-MaxFindings+1)})
	}
	out := make([]Finding, len(fs))
	// 900 KiB for all texts together keeps the frame under MaxFrame even
	// with JSON escaping of ordinary text.
	budget := (900 << 10) / max(1, len(fs))
	for i, f := range fs {
		f.Message = truncUTF8(f.Message, min(maxMessage, budget/4))
		f.Detail = truncUTF8(f.Detail, min(maxDetail, budget/2))
		out[i] = f
	}
	return out
}

func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len(" …(cut)")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:max(n, 0)] + " …(cut)"
}
