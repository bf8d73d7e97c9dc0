// Command pib is the Private Image Build service and its command-line client.
//
// One binary: `pib serve` runs the API and the build workers; the other
// commands either work on the local data directory (pib image …, pib build …)
// or talk to a server.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/pib-dev/pib/internal/problem"
)

func main() {
	platformInit()
	if err := newRootCommand().Execute(); err != nil {
		msg := err.Error()
		if errors.Is(err, problem.Unauthenticated) {
			msg += " (set PIB_TOKEN or run pib login)"
		}
		fmt.Fprintln(os.Stderr, "pib:", msg)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder lets a command choose its exit status (for example 2 for a
// platform error against 1 for "issues found").
type exitCoder interface{ ExitCode() int }
