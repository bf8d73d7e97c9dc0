package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/store"
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

	// pib's commands, one file each (named after the command). Help lists
	// them sorted by name, whatever the order here.
	root.AddCommand(
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
		newWebhookCommand(g),
		newAuditCommand(g),
		newProductsCommand(g),
		newLoadFormCommand(g),
		newChangesCommand(g),
		newVersionCommand(g),
		// Inside a vm build's guest.
		newAgentCommand(),
	)
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

// openStores opens the metadata database and the blob store: the blob
// folder of the local data directory, or the S3 bucket of --blobs with
// that folder as this node's cache.
func (g *globals) openStores(ctx context.Context) (*store.DB, blobs.Store, error) {
	if err := secureDataDir(g.dataDir); err != nil {
		return nil, nil, err
	}
	url := g.databaseURL
	if url == "" {
		url = "sqlite://" + filepath.Join(g.dataDir, "pib.db")
	}
	db, err := store.Open(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	var bs blobs.Store
	switch dir := filepath.Join(g.dataDir, "blobs"); {
	case g.blobsURL == "":
		bs, err = blobs.NewDir(dir)
	case strings.HasPrefix(g.blobsURL, "s3://"):
		bs, err = blobs.OpenS3(ctx, g.blobsURL, dir, blobs.S3Options{Leases: blobs.NewLeases(db)})
	default:
		err = fmt.Errorf("--blobs %q: want s3://BUCKET/PREFIX?endpoint=URL&region=R, or nothing for %s", g.blobsURL, dir)
	}
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, bs, nil
}

// openImages opens the local data directory: the metadata store (migrated
// on open), the blob folder and the image store over both. The returned
// function closes everything.
func (g *globals) openImages(ctx context.Context) (*images.Store, func(), error) {
	db, bs, err := g.openStores(ctx)
	if err != nil {
		return nil, nil, err
	}
	is := images.NewStore(db, bs, filepath.Join(g.dataDir, "cache"))
	return is, func() { db.Close() }, nil
}

func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}
