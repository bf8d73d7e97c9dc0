//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/instance"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/web"
)

// addServiceFlags registers the flags pib serve and pib worker share.
func addServiceFlags(f *pflag.FlagSet, o *serviceOptions) {
	f.IntVar(&o.workers, "workers", defaultWorkers(), "builds this process runs at once")
	f.DurationVar(&o.pollInterval, "poll-interval", 0, "how often idle workers look for queued jobs (default 50ms; a shorter one starts a build sooner and queries the database more often)")
	f.DurationVar(&o.buildTimeout, "build-timeout", sandbox.DefaultTimeout, "time limit of one test build (I7)")
	f.StringVar(&o.policyFile, "policy", "", "scan policy file (JSON or YAML; default: fail on Critical/High with a fix and on any S3 failure)")
	f.Int64Var(&o.limits.MemoryBytes, "build-memory", sandbox.DefaultMemoryBytes, "memory limit of one build, bytes")
	f.Int64Var(&o.limits.DiskBytes, "build-disk", sandbox.DefaultDiskBytes, "limit on what one build may write, bytes")
	f.IntVar(&o.limits.Pids, "build-pids", sandbox.DefaultPids, "process limit of one build")
	f.Uint32Var(&o.ids.Base, "build-id-base", sandbox.DefaultIDBase, "first host user/group ID of the builds' user namespaces (T1)")
	f.IntVar(&o.ids.Slots, "build-id-slots", sandbox.DefaultIDSlots, "builds on this machine at once, each with its own range of 65,536 host IDs")
	f.IntVar(&o.buyerBuildLimit, "buyer-build-limit", privatebuilds.DefaultLimit, "private image builds one account may have in progress at once (C4, BuildLimitExceeded)")
	addEpochFlag(f, &o.sourceDateEpoch)
	f.BoolVar(&o.webhookAllowPrivate, "webhook-allow-private", false, "let webhooks reach internal addresses (loopback, private, link-local and every other IANA special-purpose block)")
	f.DurationVar(&o.vulndbRefresh, "vulndb-refresh", 0, "download new vulnerability data this often (conditional requests, as pib vulndb update) and re-match the images that matter (S5); 0: never, for servers without network access (any import is still re-matched within a minute)")
	f.StringVar(&o.vulndbBaseURL, "vulndb-base-url", vulndb.DefaultBaseURL, "where --vulndb-refresh downloads <Ecosystem>/all.zip from")
}

func newServeCommand(g *globals) *cobra.Command {
	var listen, metricsListen, pprofListen string
	var instanceLimit int
	var o serviceOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the pib service: REST API, web portal and build workers",
		Long: `Run the pib service: the REST API (/v1/, /v1/openapi.json, /healthz, /metrics
for operators, or for anyone reaching --metrics-listen), the web portal at /
(sign in with an account token) and the build workers. On first start it creates the operator account and writes
its token to <data>/operator.token (mode 0600). --workers 0 serves the API
only, for API nodes beside pib worker machines. SIGINT or SIGTERM stop it
gracefully: running builds are cancelled cleanly and queued again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tuneGC()
			if o.workers == 0 {
				o.workers = -1 // the pipeline's "submit only"
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			svc, err := g.openService(ctx, o)
			if err != nil {
				return err
			}
			defer svc.db.Close()
			if err := svc.deps.Accounts.EnsureOperator(ctx, filepath.Join(g.dataDir, "operator.token")); err != nil {
				return err
			}
			if instanceLimit < 1 {
				return fmt.Errorf("--instance-limit %d: give 1 or more", instanceLimit)
			}
			// Instances run under this process and end with it: what a
			// killed one left in the directory is removed here.
			im, err := instance.New(instance.Config{Images: svc.deps.Images, Dir: filepath.Join(g.dataDir, "instances"), Limit: instanceLimit})
			if err != nil {
				return fmt.Errorf("prepare the instances' directory: %w", err)
			}
			defer func() {
				if err := im.Close(); err != nil {
					slog.Warn("removing the instances' files", "err", err)
				}
			}()
			svc.deps.Instances = im
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (another pib serve running? choose --listen)", listen, err)
			}
			if err := svc.pipeline.Start(ctx); err != nil {
				ln.Close()
				return err
			}
			srv := api.New(svc.deps)
			hs := &http.Server{Handler: web.Beside(srv, web.New(svc.deps)), ReadHeaderTimeout: 10 * time.Second}
			errc := make(chan error, 3)
			go func() { errc <- hs.Serve(ln) }()
			if metricsListen != "" {
				ms, err := serveMetrics(metricsListen, srv.MetricsHandler(), errc)
				if err != nil {
					hs.Close()
					svc.pipeline.Stop(context.WithoutCancel(ctx))
					return err
				}
				defer ms.Close()
			}
			if pprofListen != "" {
				ps, err := servePprof(pprofListen, errc)
				if err != nil {
					hs.Close()
					svc.pipeline.Stop(context.WithoutCancel(ctx))
					return err
				}
				defer ps.Close()
			}
			if sum, err := vulndb.New(svc.db).Summary(ctx); err == nil && sum.Records == 0 {
				slog.Warn("the vulnerability database is empty: scans will find no vulnerabilities; load it with pib vulndb import FILE or pib vulndb update")
			}
			slog.Info("pib serving", "url", "http://"+ln.Addr().String(), "data", g.dataDir, "database", svc.db.Dialect, "workers", o.workers)
			select {
			case err = <-errc:
			case <-ctx.Done():
			}
			slog.Info("shutting down: finishing requests, queueing running builds again, stopping instances")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if serr := hs.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
				err = serr
			}
			if perr := svc.pipeline.Stop(sctx); perr != nil && err == nil {
				err = perr
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve on")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "also serve /metrics without a token on this address (a private interface for a Prometheus scraper); on --listen /metrics needs an operator token")
	cmd.Flags().StringVar(&pprofListen, "pprof-listen", "", "serve Go's profiler (/debug/pprof/) without a token on this address (a private interface: profiles show the service's internals); for finding where builds spend their time")
	cmd.Flags().Int64Var(&o.maxUpload, "max-upload", packages.DefaultMaxSize, "largest package upload in bytes")
	cmd.Flags().IntVar(&instanceLimit, "instance-limit", instance.DefaultLimit, "instances (pib instance launch) one account may have at once; they run on this machine and stop with pib serve")
	addServiceFlags(cmd.Flags(), &o)
	return cmd
}

func newWorkerCommand(g *globals) *cobra.Command {
	var o serviceOptions
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run build workers only, to add build capacity beside pib serve",
		Long: `Run build workers only. Point it at the same database (--database-url
postgres://…) and blob store as pib serve to add build capacity on another
machine. SIGINT or SIGTERM stop it gracefully: running builds are queued again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.workers < 1 {
				return errors.New("--workers must be at least 1")
			}
			tuneGC()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			svc, err := g.openService(ctx, o)
			if err != nil {
				return err
			}
			defer svc.db.Close()
			if err := svc.pipeline.Start(ctx); err != nil {
				return err
			}
			slog.Info("pib worker running", "data", g.dataDir, "database", svc.db.Dialect, "workers", o.workers)
			<-ctx.Done()
			slog.Info("stopping: queueing running builds again")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return svc.pipeline.Stop(sctx)
		},
	}
	addServiceFlags(cmd.Flags(), &o)
	return cmd
}

// servePprof serves net/http/pprof's handlers on addr; a failure of the
// listener after it started is sent on errc.
func servePprof(addr string, errc chan<- error) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for the profiler: %w (choose another --pprof-listen)", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := ps.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("profiler listener %s: %w", addr, err)
		}
	}()
	slog.Info("serving the profiler without a token", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return ps, nil
}

// defaultWorkers is the default of --workers: one build per CPU.
func defaultWorkers() int { return runtime.NumCPU() }

// serveMetrics serves GET /metrics unauthenticated on addr; a failure of
// the listener after it started is sent on errc.
func serveMetrics(addr string, h http.Handler, errc chan<- error) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for metrics: %w (choose another --metrics-listen)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := ms.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics listener %s: %w", addr, err)
		}
	}()
	slog.Info("serving metrics without a token", "url", "http://"+ln.Addr().String()+"/metrics")
	return ms, nil
}

// gcPercent is the Go collector's GOGC in pib serve and pib worker.
//
// Why not Go's default of 100: a build's scan allocates many times what
// it keeps (syft's file index, its relationship pass, the SBOM), so at 100
// the collector ran several times per scan and took 10–25% of it. At 300
// the server's scan of a build took 15–25% less time and 10% less CPU in
// BenchmarkServerScan (bench/run.sh), for a heap that may grow to four
// times its live size instead of twice. GOGC (or GOMEMLIMIT) in the
// environment wins.
const gcPercent = 300

// tuneGC sets gcPercent unless the environment sets GOGC.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}
