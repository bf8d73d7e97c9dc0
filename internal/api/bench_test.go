package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

// BenchmarkListGroups10k measures GET /v1/package-groups and the status
// view GET /v1/status (first page and a deep page) for a seller with 10,000
// submitted groups, on both engines, reporting p50 and p99 latency.
func BenchmarkListGroups10k(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			db := storetest.Open(b, d)
			e := newEnvWith(b, db, func(deps *api.Deps) {
				hooks := webhook.New(db, webhook.Config{})
				p, err := pipeline.New(context.Background(), db, pipeline.Config{Workers: -1, Groups: deps.Groups, OSVersions: deps.OSVersions, Webhooks: hooks})
				if err != nil {
					b.Fatal(err)
				}
				deps.Pipeline, deps.Builds, deps.Webhooks = p, p.Reader(), hooks
			})
			seller := e.account("bench", accounts.Seller)
			e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, nil)
			_, inst := e.upload(seller, "setup.sh", "#!/bin/sh\n")
			ctx := context.Background()
			var ownerID string
			db.QueryRowContext(ctx, `SELECT id FROM accounts WHERE name = 'bench'`).Scan(&ownerID)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			base := time.Now().UTC().Add(-time.Hour)
			for i := range 10000 {
				id := fmt.Sprintf("pg-bench%08d", i)
				name := fmt.Sprintf("Bench%05dLinux1", i)
				for _, q := range []struct {
					sql  string
					args []any
				}{
					{`INSERT INTO group_names (owner, name) VALUES ($1, $2)`, []any{ownerID, name}},
					{`INSERT INTO package_groups (id, owner, name, platform, installer_id, created_at) VALUES ($1, $2, $3, 'linux', $4, $5)`, []any{id, ownerID, name, inst["id"], base.Add(time.Duration(i) * time.Millisecond)}},
					{`INSERT INTO group_os_versions (group_id, os_name) VALUES ($1, 'debian-12')`, []any{id}},
					{`INSERT INTO builds (id, group_id, owner, submission, os_name, base_image_id, state, image_id, submitted_at, updated_at)
						VALUES ($1, $2, $3, 1, 'debian-12', 'img-00000000000000000', 'Successful', 'img-00000000000000001', $4, $4)`, []any{"b-" + id, id, ownerID, base}},
				} {
					if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if d == store.Postgres {
				// What autovacuum would do after a bulk load: fresh
				// statistics for the planner.
				if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
					b.Fatal(err)
				}
			}
			var deep string
			var page struct {
				NextCursor string `json:"next_cursor"`
			}
			e.call("GET", "/v1/package-groups?limit=1000&cursor=", seller, "", nil, &page)
			for range 8 {
				deep = page.NextCursor
				e.call("GET", "/v1/package-groups?limit=1000&cursor="+deep, seller, "", nil, &page)
			}
			for _, tc := range []struct{ name, path string }{
				{"groups/first-page", "/v1/package-groups?limit=100"},
				{"groups/page-90", "/v1/package-groups?limit=100&cursor=" + deep},
				{"status/first-page", "/v1/status?limit=100"},
				{"status/page-90", "/v1/status?limit=100&cursor=" + deep},
			} {
				b.Run(tc.name, func(b *testing.B) {
					var lat []time.Duration
					for range b.N {
						req, _ := http.NewRequest("GET", e.url+tc.path, nil)
						req.Header.Set("Authorization", "Bearer "+seller)
						start := time.Now()
						resp, err := http.DefaultClient.Do(req)
						if err != nil || resp.StatusCode != 200 {
							b.Fatalf("%v %v", err, resp)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						lat = append(lat, time.Since(start))
					}
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				})
			}
		})
	}
}
