//go:build windows

package main

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
)

// agentServiceName is the service docs/agent.md registers. (The Service
// Control Manager ignores the name for a service in its own process, so
// another name works too.)
const agentServiceName = "pib-agent"

// runAgent: started by the Service Control Manager, pib must connect to
// it (svc.Run calls StartServiceCtrlDispatcher) within 30 s or be killed
// (error 1053); the session then runs under agentService. Started from a
// console, it runs as on Linux.
// agentSvcStopGrace is how long, after Stop or Shutdown, the agent waits
// for its session to end before it reports the service stopped anyway.
const agentSvcStopGrace = 10 * time.Second

func runAgent(ctx context.Context, port, staging string) error {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("find out whether pib agent runs as a Windows service: %w", err)
	}
	if !isService {
		return runAgentConsole(ctx, port, staging)
	}
	elog := openAgentEventLog() // nil when the source cannot be opened: no logging
	defer elog.close()
	h := &agentService{
		ctx:     ctx,
		session: func(ctx context.Context) error { return agentSession(ctx, port, staging) },
		errc:    make(chan error, 1),
		elog:    elog,
	}
	if err := svc.Run(agentServiceName, h); err != nil {
		err = fmt.Errorf("run as the Windows service %s: %w", agentServiceName, err)
		elog.error(agentEventFailed, "pib agent: "+err.Error())
		return err
	}
	// The service has stopped, its exit code given to the Service Control
	// Manager; the session's error also makes pib's own exit status fail.
	select {
	case err := <-h.errc:
		return err
	default:
		return nil
	}
}

// agentService is the svc.Handler of `pib agent`.
type agentService struct {
	ctx     context.Context
	session func(context.Context) error
	errc    chan error // the session's error, once Execute returns
	elog    *agentEventLog
}

func (h *agentService) Execute(args []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (svcSpecificEC bool, exitCode uint32) {
	h.elog.info(agentEventStarted, "pib agent started as a Windows service")
	code, err := agentSvcExecute(h.ctx, r, agentSvcCmdOf, func(st agentSvcStatus) { s <- svcStatusOf(st) }, h.session, agentSvcStopGrace)
	if err != nil {
		h.elog.error(agentEventFailed, fmt.Sprintf("pib agent session failed (service exit code %d): %v", code, err))
	} else {
		h.elog.info(agentEventEnded, "pib agent session ended")
	}
	h.errc <- err
	return code != 0, code
}

func agentSvcCmdOf(c svc.ChangeRequest) agentSvcCmd {
	switch c.Cmd {
	case svc.Interrogate:
		return agentSvcInterrogate
	case svc.Stop:
		return agentSvcStop
	case svc.Shutdown:
		return agentSvcShutdown
	}
	return agentSvcOther
}

func svcStatusOf(st agentSvcStatus) svc.Status {
	out := svc.Status{WaitHint: uint32(st.WaitHint / time.Millisecond)}
	switch st.State {
	case agentSvcStartPending:
		out.State = svc.StartPending
	case agentSvcRunning:
		out.State = svc.Running
	case agentSvcStopPending:
		out.State = svc.StopPending
	}
	if st.AcceptsStop {
		out.Accepts = svc.AcceptStop | svc.AcceptShutdown
	}
	return out
}

// agentEventSource is the Application event log source of the agent run
// as a Windows service; the operator registers it (docs/agent.md).
const agentEventSource = "pib-agent"

// Event IDs of the agent's events (between 1 and 1000, as sources
// registered for EventCreate.exe require).
const (
	agentEventStarted uint32 = 1
	agentEventEnded   uint32 = 2
	agentEventFailed  uint32 = 3
)

// agentEventMax bounds the text of one event, in bytes.
const agentEventMax = 4 << 10

// agentEventLog writes the service's events to the Application event log.
// Under the Service Control Manager the agent has no console: without it
// a session's error would be lost. Logging is best effort: a nil
// *agentEventLog (the source could not be opened) writes nothing, and a
// failed write is ignored.
type agentEventLog struct {
	l *eventlog.Log
}

// openAgentEventLog opens the agent's event source, or returns nil when
// it cannot: the service runs without logging then.
func openAgentEventLog() *agentEventLog {
	l, err := eventlog.Open(agentEventSource)
	if err != nil {
		return nil
	}
	return &agentEventLog{l: l}
}

func (e *agentEventLog) info(eid uint32, msg string) {
	if e == nil {
		return
	}
	_ = e.l.Info(eid, agentEventText(msg))
}

func (e *agentEventLog) error(eid uint32, msg string) {
	if e == nil {
		return
	}
	_ = e.l.Error(eid, agentEventText(msg))
}

func (e *agentEventLog) close() {
	if e == nil {
		return
	}
	_ = e.l.Close()
}

// agentEventText makes msg fit an event: valid UTF-8 with no NUL (the
// text is passed as a NUL-terminated UTF-16 string), clipped to
// agentEventMax bytes on a rune boundary.
func agentEventText(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	msg = strings.ReplaceAll(msg, "\x00", "\uFFFD")
	if len(msg) <= agentEventMax {
		return msg
	}
	const more = " … (clipped)"
	n := agentEventMax - len(more)
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n] + more
}
