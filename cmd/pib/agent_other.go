//go:build !windows

package main

import "context"

// runAgent: outside Windows, init (pib-agent.service) starts `pib agent`
// as a plain process.
func runAgent(ctx context.Context, port, staging string) error {
	return runAgentConsole(ctx, port, staging)
}
