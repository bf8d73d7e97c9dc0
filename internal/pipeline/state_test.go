package pipeline_test

import (
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/pipeline"
)

func TestGroupState(t *testing.T) {
	B, S, OK, IF, INV := pipeline.Building, pipeline.Scanning, pipeline.Successful, pipeline.IssuesFound, pipeline.Investigating
	tests := []struct {
		name   string
		states []pipeline.State
		want   pipeline.State
	}{
		{"never submitted", nil, pipeline.Draft},
		{"one building", []pipeline.State{B}, B},
		{"earliest stage in progress wins", []pipeline.State{S, B, OK}, B},
		{"scanning beside ended builds", []pipeline.State{S, INV, IF}, S},
		{"in progress beats investigating", []pipeline.State{INV, S}, S},
		{"investigating beats issues found", []pipeline.State{OK, IF, INV}, INV},
		{"issues found beats successful", []pipeline.State{OK, IF}, pipeline.GroupIssuesFound},
		{"all successful", []pipeline.State{OK, OK}, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bs []*pipeline.Build
			for _, s := range tt.states {
				bs = append(bs, &pipeline.Build{State: s})
			}
			if got := pipeline.GroupState(bs); got != tt.want {
				t.Errorf("GroupState(%v) = %q, want %q", tt.states, got, tt.want)
			}
		})
	}
}

func TestBusinessTime(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-11-23 is a Monday; 2026-11-28/29 a weekend.
	tests := []struct {
		name     string
		from, to string
		want     time.Duration
		overdue  bool
	}{
		{"same day", "2026-11-23T09:00:00Z", "2026-11-23T17:00:00Z", 8 * time.Hour, false},
		{"whole weekend counts nothing", "2026-11-28T00:00:00Z", "2026-11-30T00:00:00Z", 0, false},
		{"friday noon to monday noon", "2026-11-27T12:00:00Z", "2026-11-30T12:00:00Z", 24 * time.Hour, false},
		{"four business days exactly is not overdue", "2026-11-23T10:00:00Z", "2026-11-27T10:00:00Z", 96 * time.Hour, false},
		{"just over four business days", "2026-11-23T10:00:00Z", "2026-11-27T10:00:01Z", 96*time.Hour + time.Second, true},
		{"friday to thursday spans a weekend", "2026-11-27T10:00:00Z", "2026-12-03T10:00:00Z", 96 * time.Hour, false},
		{"friday to next friday", "2026-11-27T10:00:00Z", "2026-12-04T10:00:00Z", 120 * time.Hour, true},
		{"opened on saturday, counted from monday", "2026-11-28T15:00:00Z", "2026-12-04T00:00:00Z", 96 * time.Hour, false},
		{"six calendar days over a weekend", "2026-11-26T00:00:00Z", "2026-12-02T00:00:00Z", 96 * time.Hour, false},
		{"end before start", "2026-11-24T00:00:00Z", "2026-11-23T00:00:00Z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pipeline.BusinessTime(at(tt.from), at(tt.to)); got != tt.want {
				t.Errorf("BusinessTime = %s, want %s", got, tt.want)
			}
			if got := pipeline.Overdue(at(tt.from), at(tt.to)); got != tt.overdue {
				t.Errorf("Overdue = %v, want %v", got, tt.overdue)
			}
		})
	}
}
