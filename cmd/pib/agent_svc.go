package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The service control protocol of `pib agent` run as a Windows service
// (agent_windows.go adapts it to golang.org/x/sys/windows/svc). It uses
// no Windows types, so that it builds, and is tested, on every platform
// (agent_svc_test.go).

// agentSvcCmd is a control request of the Service Control Manager.
type agentSvcCmd int

const (
	agentSvcOther       agentSvcCmd = iota // a control the agent does not accept: ignored
	agentSvcInterrogate                    // report the current status again
	agentSvcStop
	agentSvcShutdown // the system shuts down
)

// agentSvcState is a service state reported to the Service Control Manager.
type agentSvcState int

const (
	agentSvcStartPending agentSvcState = iota + 1
	agentSvcRunning
	agentSvcStopPending
)

// agentSvcStatus is one status report.
type agentSvcStatus struct {
	State agentSvcState
	// AcceptsStop: the service accepts the Stop and Shutdown controls.
	AcceptsStop bool
	// WaitHint is how long the pending state may last.
	WaitHint time.Duration
}

// agentSvcFailed is the service-specific exit code of a failed session
// (0 is success).
const agentSvcFailed uint32 = 1

// agentSvcExecute runs one agent session as a service's Execute does: it
// reports StartPending, starts session, reports Running (accepting Stop
// and Shutdown) and returns when the session ends. Stop or Shutdown
// cancels the session's context and reports StopPending; the session is
// then given grace to end. cmdOf translates a request read from reqs and
// report sends a status; the caller reports Stopped, with exitCode, once
// agentSvcExecute returns.
//
// exitCode is 0 when the session succeeded or ended because it was
// stopped, agentSvcFailed otherwise; err is the session's error then.
func agentSvcExecute[R any](ctx context.Context, reqs <-chan R, cmdOf func(R) agentSvcCmd, report func(agentSvcStatus), session func(context.Context) error, grace time.Duration) (exitCode uint32, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	cur := agentSvcStatus{State: agentSvcStartPending}
	report(cur)
	done := make(chan error, 1) // buffered: an abandoned session must not leak blocked
	go func() { done <- session(ctx) }()
	cur = agentSvcStatus{State: agentSvcRunning, AcceptsStop: true}
	report(cur)

	stopping := false
	var deadline <-chan time.Time
	for {
		select {
		case err := <-done:
			switch {
			case err == nil:
				return 0, nil
			case stopping && errors.Is(err, context.Canceled):
				return 0, nil
			default:
				return agentSvcFailed, err
			}
		case <-deadline:
			return agentSvcFailed, fmt.Errorf("the agent session did not end within %s of the request to stop", grace)
		case r := <-reqs:
			switch cmdOf(r) {
			case agentSvcInterrogate:
				report(cur)
			case agentSvcStop, agentSvcShutdown:
				if stopping {
					continue
				}
				stopping = true
				cancel()
				cur = agentSvcStatus{State: agentSvcStopPending, WaitHint: 2 * grace}
				report(cur)
				deadline = time.After(grace)
			}
		}
	}
}
