//go:build linux

package main

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestSourceDateEpochFlag: --source-date-epoch and SOURCE_DATE_EPOCH take
// whole Unix seconds; unset means the base image's creation time (nil);
// anything else is refused, by Set at once or, from the environment, when
// the command runs.
func TestSourceDateEpochFlag(t *testing.T) {
	for _, c := range []struct {
		name, env string
		args      []string
		want      int64 // -1: nil
		setErr    bool
		valueErr  bool
	}{
		{name: "unset", want: -1},
		{name: "flag", args: []string{"--source-date-epoch", "1700000000"}, want: 1700000000},
		{name: "zero is 1970", args: []string{"--source-date-epoch=0"}, want: 0},
		{name: "environment", env: "1600000000", want: 1600000000},
		{name: "flag over environment", env: "1600000000", args: []string{"--source-date-epoch", "1700000000"}, want: 1700000000},
		{name: "empty flag over environment", env: "1600000000", args: []string{"--source-date-epoch="}, want: -1},
		{name: "negative", args: []string{"--source-date-epoch", "-5"}, setErr: true},
		{name: "not a number", args: []string{"--source-date-epoch", "2026-01-01"}, setErr: true},
		{name: "bad environment", env: "yesterday", valueErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", c.env)
			f := pflag.NewFlagSet("test", pflag.ContinueOnError)
			var e epochFlag
			addEpochFlag(f, &e)
			err := f.Parse(c.args)
			if (err != nil) != c.setErr {
				t.Fatalf("Parse(%q) = %v, want error %v", c.args, err, c.setErr)
			}
			if c.setErr {
				return
			}
			got, err := e.value()
			if (err != nil) != c.valueErr {
				t.Fatalf("value() = %v, %v; want error %v", got, err, c.valueErr)
			}
			switch {
			case c.valueErr:
			case c.want < 0 && got != nil:
				t.Errorf("value() = %v, want nil (the base image's creation time)", got)
			case c.want >= 0 && (got == nil || !got.Equal(time.Unix(c.want, 0))):
				t.Errorf("value() = %v, want %v", got, time.Unix(c.want, 0))
			}
		})
	}
}
