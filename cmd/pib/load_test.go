//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/testenv"
)

// loadDuration is how long TestLoad drives the API: a short run in `make
// test`, the full minute under `make soak` (PIB_SOAK=1).
func loadDuration() time.Duration {
	if os.Getenv("PIB_SOAK") != "" {
		return 60 * time.Second
	}
	return 8 * time.Second
}

// statusCounter counts the server's answers by class, whatever the client
// makes of them.
type statusCounter struct {
	base        http.RoundTripper
	server5xx   atomic.Int64
	client4xx   atomic.Int64
	transportEr atomic.Int64
}

func (c *statusCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	switch {
	case err != nil:
		c.transportEr.Add(1)
	case resp.StatusCode >= 500:
		c.server5xx.Add(1)
	case resp.StatusCode >= 400:
		c.client4xx.Add(1)
	}
	return resp, err
}

// TestLoad: 50 concurrent API clients of a real `pib serve` mix uploads,
// group creation and submission, status polling and report reads, on
// SQLite and on PostgreSQL. No answer may be a 5xx (or any other error),
// every package and group a client was told it created must be there
// exactly once afterwards, each submitted group with exactly one build,
// and the server's memory must stay bounded. It logs the p50/p99
// latency of each kind of request.
func TestLoad(t *testing.T) {
	testenv.RequireRoot(t) // pib image import runs as the pib command does
	for _, engine := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(engine), func(t *testing.T) { runLoad(t, engine) })
	}
}

func runLoad(t *testing.T, engine store.Dialect) {
	const clients = 50
	const sellers = 5
	// The peak resident memory pib serve may reach: far above what it
	// needs, far below what a leak per request over a run would make.
	const maxRSS = 600 << 20
	ctx := context.Background()
	data := t.TempDir()
	var global []string
	if engine == store.Postgres {
		global = []string{"--database-url", storetest.Open(t, store.Postgres).URL}
	}
	if _, err := runPib(data, append(global, "image", "import", rootfsTar(t), "--alias", "tiny")...); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	// API only: the submitted builds queue, the load is the API's.
	srv := startServerTB(t, data, addr, 0, global...)
	op := srv.operator(t)
	if _, err := op.AddOSVersion(ctx, "tiny-3", "tiny"); err != nil {
		t.Fatal(err)
	}
	counter := &statusCounter{base: http.DefaultTransport.(*http.Transport).Clone()}
	counter.base.(*http.Transport).MaxIdleConnsPerHost = clients
	httpClient := &http.Client{Transport: counter, Timeout: 60 * time.Second}
	var sellerClients []*client.Client
	for i := range sellers {
		acc, err := op.CreateAccount(ctx, fmt.Sprintf("load-%d", i), accounts.Seller)
		if err != nil {
			t.Fatal(err)
		}
		c := client.New(srv.url, acc.Token)
		c.HTTP = httpClient
		sellerClients = append(sellerClients, c)
	}

	type sample struct {
		kind string
		d    time.Duration
	}
	var (
		mu        sync.Mutex
		samples   []sample
		errs      []string
		packages  = map[string]int{} // package ID → times a client was told it was created
		submitted = map[string]string{}
		created   int
	)
	stop := time.Now().Add(loadDuration())
	var peakRSS atomic.Int64
	sampling := make(chan struct{})
	go func() {
		for {
			if rss := vmHWM(srv.cmd.Process.Pid); rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			select {
			case <-sampling:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	for ci := range clients {
		wg.Go(func() {
			c := sellerClients[ci%sellers]
			timed := func(kind string, fn func() error) error {
				start := time.Now()
				err := fn()
				mu.Lock()
				samples = append(samples, sample{kind, time.Since(start)})
				if err != nil {
					errs = append(errs, fmt.Sprintf("client %d %s: %v", ci, kind, err))
				}
				mu.Unlock()
				return err
			}
			var lastPkg, lastGroup string
			for n := 0; time.Now().Before(stop); n++ {
				switch n % 4 {
				case 0:
					body := fmt.Sprintf("#!/bin/sh\necho client %d request %d\n", ci, n)
					timed("upload", func() error {
						p, err := c.UploadPackage(ctx, fmt.Sprintf("c%d-%d.sh", ci, n), strings.NewReader(body), int64(len(body)))
						if err == nil {
							lastPkg = p.ID
							mu.Lock()
							packages[p.ID]++
							mu.Unlock()
						}
						return err
					})
				case 1:
					if lastPkg == "" {
						continue
					}
					name := fmt.Sprintf("Load%dx%d", ci, n)
					if timed("create group", func() error {
						_, err := c.CreateGroup(ctx, groups.Spec{Name: name, Platform: "linux", OSVersions: []string{"tiny-3"}, InstallerID: lastPkg})
						if err == nil {
							mu.Lock()
							created++
							mu.Unlock()
						}
						return err
					}) != nil {
						continue
					}
					if timed("submit", func() error {
						_, err := c.SubmitGroup(ctx, name)
						return err
					}) == nil {
						lastGroup = name
						mu.Lock()
						submitted[name] = c.Token
						mu.Unlock()
					}
				case 2:
					timed("status", func() error {
						_, err := c.Status(ctx, client.StatusQuery{Page: client.Page{Limit: 20}})
						return err
					})
				case 3:
					if lastGroup == "" {
						continue
					}
					timed("group builds", func() error {
						_, err := c.GroupBuilds(ctx, lastGroup)
						return err
					})
				}
			}
		})
	}
	wg.Wait()
	close(sampling)

	// What every client was told is there, exactly once.
	byToken := map[string]*client.Client{}
	for _, c := range sellerClients {
		byToken[c.Token] = c
	}
	listed := map[string]int{}
	for _, c := range sellerClients {
		ps, err := c.ListPackages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			listed[p.ID]++
		}
	}
	for id, n := range packages {
		if n != 1 || listed[id] != 1 {
			t.Errorf("package %s: created %d times, listed %d times; want 1 and 1", id, n, listed[id])
		}
	}
	if len(listed) != len(packages) {
		t.Errorf("%d packages listed, %d created", len(listed), len(packages))
	}
	for name, token := range submitted {
		st, err := byToken[token].GroupBuilds(ctx, name)
		if err != nil {
			t.Errorf("group %s: %v", name, err)
			continue
		}
		if len(st.Builds) != 1 {
			t.Errorf("group %s has %d builds, want 1", name, len(st.Builds))
		}
	}
	var groupsListed int
	for _, c := range sellerClients {
		for cursor := ""; ; {
			page, err := c.ListGroups(ctx, client.Page{Cursor: cursor, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			groupsListed += len(page.Items)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
	}
	if groupsListed != created {
		t.Errorf("%d groups listed, %d created", groupsListed, created)
	}
	if n := counter.server5xx.Load(); n != 0 {
		t.Errorf("%d answers were 5xx", n)
	}
	for i, e := range errs {
		if i == 10 {
			t.Errorf("… %d more errors", len(errs)-10)
			break
		}
		t.Error(e)
	}
	if rss := peakRSS.Load(); rss > maxRSS {
		t.Errorf("pib serve peaked at %d MiB resident, over the %d MiB bound", rss>>20, maxRSS>>20)
	}
	kinds := map[string][]time.Duration{}
	for _, s := range samples {
		kinds[s.kind] = append(kinds[s.kind], s.d)
		kinds["all"] = append(kinds["all"], s.d)
	}
	var lines []string
	for kind, ds := range kinds {
		slices.Sort(ds)
		lines = append(lines, fmt.Sprintf("  %-13s %6d requests  p50 %7.2f ms  p99 %7.2f ms", kind, len(ds),
			float64(ds[len(ds)/2].Microseconds())/1000, float64(ds[len(ds)*99/100].Microseconds())/1000))
	}
	slices.Sort(lines)
	t.Logf("%s, %d clients for %s: %d packages, %d groups (%d submitted), 0 lost or duplicated; 5xx %d, 4xx %d, transport errors %d; pib serve peak RSS %d MiB\n%s",
		engine, clients, loadDuration(), len(packages), groupsListed, len(submitted), counter.server5xx.Load(), counter.client4xx.Load(), counter.transportEr.Load(), peakRSS.Load()>>20, strings.Join(lines, "\n"))
}

// operator is a client of the server's operator account.
func (s *pibServer) operator(t testing.TB) *client.Client {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(s.data, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	return client.New(s.url, strings.TrimSpace(string(token)))
}

// vmHWM is the peak resident set size of process pid, in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
