package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
)

func init() { commands = append(commands, newServeCommand) }

func newServeCommand(g *globals) *cobra.Command {
	var listen string
	var maxUpload int64
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the pib service: REST API and job workers",
		Long: `Run the pib service: the REST API (/v1/, /v1/openapi.json, /healthz, /metrics)
and the job workers. On first start it creates the operator account and writes
its token to <data>/operator.token (mode 0600). SIGINT or SIGTERM stop it
gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			db, bs, err := g.openStores(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			as := accounts.NewStore(db)
			tokenFile := filepath.Join(g.dataDir, "operator.token")
			if err := as.EnsureOperator(ctx, tokenFile); err != nil {
				return err
			}
			ps := packages.NewStore(db, bs)
			ps.MaxSize = maxUpload
			oses := osversions.NewStore(db)
			srv := api.New(api.Deps{
				Accounts:   as,
				Packages:   ps,
				Groups:     groups.NewStore(db, ps, oses),
				OSVersions: oses,
				Images:     images.NewStore(db, bs, filepath.Join(g.dataDir, "cache")),
			})
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (another pib serve running? choose --listen)", listen, err)
			}
			hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			slog.Info("pib serving", "url", "http://"+ln.Addr().String(), "data", g.dataDir, "database", db.Dialect)
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			slog.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve on")
	cmd.Flags().Int64Var(&maxUpload, "max-upload", packages.DefaultMaxSize, "largest package upload in bytes")
	return cmd
}
