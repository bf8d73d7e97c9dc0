package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSchedules: the watch always runs; the refresh (network) only with a
// refresh function and an interval, so it is off by default.
func TestSchedules(t *testing.T) {
	refresh := func(context.Context) error { return nil }
	type sched struct {
		ID       string
		Interval time.Duration
		Kind     string
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []sched
	}{
		{"default: watch only, every minute", Config{}, []sched{{"pib.monitor.watch", time.Minute, "pib_monitor_watch"}}},
		{"interval without network: no refresh", Config{RefreshInterval: 6 * time.Hour}, []sched{{"pib.monitor.watch", time.Minute, "pib_monitor_watch"}}},
		{"refresh without interval: off", Config{Refresh: refresh}, []sched{{"pib.monitor.watch", time.Minute, "pib_monitor_watch"}}},
		{"refresh every 6h", Config{Refresh: refresh, RefreshInterval: 6 * time.Hour, WatchInterval: 30 * time.Second},
			[]sched{{"pib.monitor.watch", 30 * time.Second, "pib_monitor_watch"}, {"pib.monitor.refresh", 6 * time.Hour, "pib_monitor_refresh"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []sched
			for _, s := range New(nil, tc.cfg).schedules() {
				got = append(got, sched{s.id, s.interval, s.args.Kind()})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("schedules (-want +got):\n%s", diff)
			}
		})
	}
}
