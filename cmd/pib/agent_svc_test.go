package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestAgentSvcExecute: the statuses `pib agent` reports to the Windows
// Service Control Manager for a stream of control requests, and the exit
// code it leaves, against sessions that succeed, fail, heed or ignore a
// stop.
func TestAgentSvcExecute(t *testing.T) {
	const grace = 100 * time.Millisecond
	var (
		startPending = agentSvcStatus{State: agentSvcStartPending}
		running      = agentSvcStatus{State: agentSvcRunning, AcceptsStop: true}
		stopPending  = agentSvcStatus{State: agentSvcStopPending, WaitHint: 2 * grace}
		boom         = errors.New("boom")
	)
	// Sessions.
	succeed := func(context.Context) error { return nil }
	fail := func(context.Context) error { return boom }
	heedStop := func(ctx context.Context) error { // as agent.Serve does
		<-ctx.Done()
		return fmt.Errorf("agent stopped: %w", ctx.Err())
	}
	failOnStop := func(ctx context.Context) error {
		<-ctx.Done()
		return boom
	}
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	ignoreStop := func(context.Context) error { <-hang; return nil }

	tests := []struct {
		name     string
		session  func(context.Context) error
		reqs     []agentSvcCmd
		want     []agentSvcStatus
		wantCode uint32
		wantErr  error // nil: no error
	}{
		{"session succeeds", succeed, nil, []agentSvcStatus{startPending, running}, 0, nil},
		{"session fails", fail, nil, []agentSvcStatus{startPending, running}, agentSvcFailed, boom},
		{"stop", heedStop, []agentSvcCmd{agentSvcStop}, []agentSvcStatus{startPending, running, stopPending}, 0, nil},
		{"shutdown", heedStop, []agentSvcCmd{agentSvcShutdown}, []agentSvcStatus{startPending, running, stopPending}, 0, nil},
		{"interrogate then stop", heedStop, []agentSvcCmd{agentSvcInterrogate, agentSvcStop}, []agentSvcStatus{startPending, running, running, stopPending}, 0, nil},
		{"unaccepted control ignored", heedStop, []agentSvcCmd{agentSvcOther, agentSvcStop}, []agentSvcStatus{startPending, running, stopPending}, 0, nil},
		{"session fails while stopping", failOnStop, []agentSvcCmd{agentSvcStop}, []agentSvcStatus{startPending, running, stopPending}, agentSvcFailed, boom},
		{"session ignores stop", ignoreStop, []agentSvcCmd{agentSvcStop, agentSvcInterrogate, agentSvcStop}, []agentSvcStatus{startPending, running, stopPending, stopPending}, agentSvcFailed, errors.New("any")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The fake Service Control Manager: requests one by one on an
			// unbuffered channel, as svc.Run delivers them.
			reqs := make(chan agentSvcCmd)
			stopSending := make(chan struct{})
			defer close(stopSending)
			go func() {
				for _, c := range tt.reqs {
					select {
					case reqs <- c:
					case <-stopSending:
						return
					}
				}
			}()
			var got []agentSvcStatus
			report := func(s agentSvcStatus) { got = append(got, s) }
			identity := func(c agentSvcCmd) agentSvcCmd { return c }

			done := make(chan struct{})
			var code uint32
			var err error
			go func() {
				defer close(done)
				code, err = agentSvcExecute(context.Background(), reqs, identity, report, tt.session, grace)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("agentSvcExecute did not return")
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("statuses:\n got %+v\nwant %+v", got, tt.want)
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != nil && err == nil:
				t.Errorf("no error, want %v", tt.wantErr)
			case tt.wantErr == boom && !errors.Is(err, boom):
				t.Errorf("error %v, want the session's %v", err, boom)
			}
		})
	}
}

// TestAgentSvcSessionStoppedByParent: the service session's context
// derives from the command's.
func TestAgentSvcSessionStoppedByParent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, err := agentSvcExecute(ctx, make(chan agentSvcCmd), func(c agentSvcCmd) agentSvcCmd { return c }, func(agentSvcStatus) {},
		func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, time.Second)
	if code != agentSvcFailed || !errors.Is(err, context.Canceled) {
		t.Errorf("got %d, %v; want a failed session (no stop was requested)", code, err)
	}
}
