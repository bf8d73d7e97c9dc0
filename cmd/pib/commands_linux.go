//go:build linux

package main

import "github.com/spf13/cobra"

// commands are pib's commands on Linux: all of them.
func commands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		// The service, on the machine of the data directory.
		newServeCommand(g),
		newWorkerCommand(g),
		// Local work on the data directory (pib image also through a server).
		newImageCommand(g),
		newBuildCommand(g),
		newScanCommand(g),
		newVulnDBCommand(g),
		newBlobsCommand(g),
		// Clients of a server.
		newLoginCommand(g),
		newAccountCommand(g),
		newOSCommand(g),
		newPackagesCommand(g),
		newGroupsCommand(g),
		newStatusCommand(g),
		newBuildsCommand(g),
		newInvestigationsCommand(g),
		newRescanCommand(g),
		newSubscriptionsCommand(g),
		newPrivateImagesCommand(g),
		newInstanceCommand(g),
		newWebhookCommand(g),
		newAuditCommand(g),
		newProductsCommand(g),
		newLoadFormCommand(g),
		newChangesCommand(g),
		newVersionCommand(g),
		// The guest agent of vm builds (issue 18).
		newAgentCommand(),
	}
}
