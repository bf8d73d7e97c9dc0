//go:build !linux

package main

import "github.com/spf13/cobra"

// commands are pib's commands where the service cannot run (its sandbox,
// image store and machines need Linux): on Windows, pib is the guest
// agent of VM builds.
func commands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newVersionCommand(g),
		// The guest agent of vm builds (issue 18).
		newAgentCommand(),
	}
}
