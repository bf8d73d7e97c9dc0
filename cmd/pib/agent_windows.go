//go:build windows

package main

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/windows/svc"
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
	h := &agentService{
		ctx:     ctx,
		session: func(ctx context.Context) error { return agentSession(ctx, port, staging) },
		errc:    make(chan error, 1),
	}
	if err := svc.Run(agentServiceName, h); err != nil {
		return fmt.Errorf("run as the Windows service %s: %w", agentServiceName, err)
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
}

func (h *agentService) Execute(args []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (svcSpecificEC bool, exitCode uint32) {
	code, err := agentSvcExecute(h.ctx, r, agentSvcCmdOf, func(st agentSvcStatus) { s <- svcStatusOf(st) }, h.session, agentSvcStopGrace)
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
