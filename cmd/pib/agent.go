package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/agent"
)

// This file must build for windows too (`pib agent` is the Windows guest's
// agent): it imports nothing Linux-only.

func defaultAgentPort() string {
	if runtime.GOOS == "windows" {
		return `\\.\Global\org.pib.agent.0`
	}
	return "/dev/virtio-ports/org.pib.agent.0"
}

func defaultAgentStaging() string {
	if runtime.GOOS == "windows" {
		return `C:\ProgramData\pib\build`
	}
	return "/var/tmp/pib/build"
}

func newAgentCommand() *cobra.Command {
	var port, staging string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run as the guest agent of a vm build: serve one session on the virtio-serial port, then exit",
		Long: `pib agent runs inside a build's virtual machine, started by the guest's
init (pib-agent.service on Linux, a service on Windows). It serves one
session of the host's pib over the virtio-serial port: it receives the
packages, runs the installer unattended under rules I1–I7 and reports the
output, the exit status and the findings. After the host's shutdown
request it powers the guest off. See docs/agent.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// runAgent: agent_windows.go runs the session under the
			// Service Control Manager when pib is started as a Windows
			// service; elsewhere, and from a console, runAgentConsole.
			ctx := cmd.Context()
			if ctx == nil { // RunE called without Execute, as in tests
				ctx = context.Background()
			}
			return runAgent(ctx, port, staging)
		},
	}
	cmd.Flags().StringVar(&port, "port", defaultAgentPort(), "virtio-serial port device")
	cmd.Flags().StringVar(&staging, "staging", defaultAgentStaging(), "directory the packages are received into (removed at shutdown)")
	return cmd
}

// runAgentConsole serves the session of an agent started from a console
// or by init: Ctrl-C or SIGTERM stops it.
func runAgentConsole(ctx context.Context, port, staging string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return agentSession(ctx, port, staging)
}

// agentSession is the agent's one session, the same from a console and
// as a Windows service: open the port, serve the host until its shutdown
// request (or until ctx is done).
func agentSession(ctx context.Context, port, staging string) error {
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open the agent port: %w (is the VM started with the virtserialport org.pib.agent.0?)", err)
	}
	defer f.Close()
	r, err := agent.NewRunner(staging)
	if err != nil {
		return err
	}
	return agent.Serve(ctx, &portConn{f: f, ctx: ctx}, r)
}

// portConn is the guest end of the virtio-serial port. Until the host
// connects, a Linux virtio port reads as end of file; that first wait is
// retried, so the agent may start before the host opens its side.
type portConn struct {
	f       *os.File
	ctx     context.Context
	started bool
}

func (p *portConn) Read(b []byte) (int, error) {
	for {
		n, err := p.f.Read(b)
		if n > 0 {
			p.started = true
		}
		if p.started || !errors.Is(err, io.EOF) || n > 0 {
			return n, err
		}
		select {
		case <-p.ctx.Done():
			return 0, io.EOF
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *portConn) Write(b []byte) (int, error) { return p.f.Write(b) }
func (p *portConn) Close() error                { return p.f.Close() }
