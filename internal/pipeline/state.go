//go:build linux

package pipeline

import (
	"time"
)

// State is a build's or a group's state (SPEC.md, "States").
type State string

// Build states.
const (
	Building      State = "Building"
	Scanning      State = "Scanning"
	Successful    State = "Successful"
	IssuesFound   State = "Issues found"
	Investigating State = "Investigating"
)

// Group states beyond the build states: SPEC spells the group's "Issues
// Found" with a capital F; a group never submitted is a Draft.
const (
	GroupIssuesFound State = "Issues Found"
	Draft            State = "Draft"
)

// Ended reports whether a build state is final.
func (s State) Ended() bool {
	return s == Successful || s == IssuesFound || s == Investigating
}

// GroupState aggregates the builds of one submission of a group: while any
// is in progress, the earliest stage in progress; once all have ended,
// Investigating if any build is, else Issues Found if any is, else
// Successful. No builds: Draft.
func GroupState(builds []*Build) State {
	states := make([]State, len(builds))
	for i, b := range builds {
		states[i] = b.State
	}
	return aggregate(states)
}

func aggregate(states []State) State {
	if len(states) == 0 {
		return Draft
	}
	has := map[State]bool{}
	for _, s := range states {
		has[s] = true
	}
	switch {
	case has[Building]:
		return Building
	case has[Scanning]:
		return Scanning
	case has[Investigating]:
		return Investigating
	case has[IssuesFound]:
		return GroupIssuesFound
	}
	return Successful
}

// OverdueAfter is how long an investigation may stay open, counted in
// business time (Monday to Friday, UTC), before it is flagged overdue.
const OverdueAfter = 4 * 24 * time.Hour

// BusinessTime is the part of [from, to) that falls on Monday to Friday
// (UTC): weekends do not count towards an investigation's age.
func BusinessTime(from, to time.Time) time.Duration {
	from, to = from.UTC(), to.UTC()
	var d time.Duration
	for from.Before(to) {
		day := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
		next := day.AddDate(0, 0, 1)
		end := minTime(next, to)
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			d += end.Sub(from)
		}
		from = next
	}
	return d
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Overdue reports whether an investigation opened at opened is overdue at
// now: open more than 4 business days.
func Overdue(opened, now time.Time) bool {
	return BusinessTime(opened, now) > OverdueAfter
}
