package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// globals are the flags every command shares. Each has an environment
// fallback so a deployment can be configured without a wrapper script.
type globals struct {
	dataDir     string
	databaseURL string
	blobsURL    string // "" for <data>/blobs, or s3://…
	logLevel    string
	server      string // API server for client commands
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "pib",
		Short:         "Private Image Build: test-build and scan installable software on base OS images",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.setupLogging(cmd)
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&g.dataDir, "data", envOr("PIB_DATA", "./pib-data"), "data directory: database, blobs, layer cache (env PIB_DATA)")
	f.StringVar(&g.databaseURL, "database-url", os.Getenv("PIB_DATABASE_URL"), "postgres://… URL; empty means SQLite at <data>/pib.db (env PIB_DATABASE_URL)")
	f.StringVar(&g.blobsURL, "blobs", os.Getenv("PIB_BLOBS"), "blob store: empty for <data>/blobs, or s3://BUCKET/PREFIX?endpoint=URL&region=R shared by every node, credentials from the AWS environment variables or files; <data>/blobs is then this node's cache (env PIB_BLOBS)")
	f.StringVar(&g.logLevel, "log-level", envOr("PIB_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env PIB_LOG_LEVEL)")
	f.StringVar(&g.server, "server", os.Getenv("PIB_SERVER"), "pib server URL for client commands, e.g. http://127.0.0.1:8080 (env PIB_SERVER; default: from pib login)")

	// pib's commands, one file each (named after the command); which
	// exist depends on the platform (commands_linux.go, commands_other.go).
	// Help lists them sorted by name, whatever the order.
	root.AddCommand(commands(g)...)
	return root
}

func (g *globals) setupLogging(cmd *cobra.Command) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})))
	return nil
}

func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}
