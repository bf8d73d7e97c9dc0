//go:build linux

package pipeline

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pib-dev/pib/internal/webhook"
)

type metrics struct {
	buildSeconds *prometheus.HistogramVec
	scanSeconds  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	// Builds run from seconds (a script) to the I7 limit of an hour.
	buckets := []float64{5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	return &metrics{
		buildSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pib_build_duration_seconds", Help: "Duration of test builds (sandbox), by result: ok, issues, error.", Buckets: buckets,
		}, []string{"result"}),
		scanSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pib_scan_duration_seconds", Help: "Duration of image scans, by result: ok, issues, error.", Buckets: buckets,
		}, []string{"result"}),
	}
}

// Collectors returns the pipeline's metrics for a Prometheus registry:
// pib_builds (builds by state), pib_queue_depth (River jobs waiting, by
// queue), pib_build_duration_seconds and pib_scan_duration_seconds.
func (p *Pipeline) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.metrics.buildSeconds, p.metrics.scanSeconds, &dbCollector{p: p}}
}

var (
	buildsDesc = prometheus.NewDesc("pib_builds", "Builds by state.", []string{"state"}, nil)
	queueDesc  = prometheus.NewDesc("pib_queue_depth", "Jobs waiting to run (available, scheduled or retryable), by queue.", []string{"queue"}, nil)
)

// dbCollector reads counts from the database at scrape time, so every
// process reports the same numbers whichever ran the builds.
type dbCollector struct{ p *Pipeline }

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- buildsDesc
	ch <- queueDesc
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[string]float64{}
	for _, s := range []State{Building, Scanning, Successful, IssuesFound, Investigating} {
		counts[string(s)] = 0
	}
	if err := c.count(ctx, `SELECT state, COUNT(*) FROM builds GROUP BY state`, counts); err != nil {
		ch <- prometheus.NewInvalidMetric(buildsDesc, err)
	} else {
		for s, n := range counts {
			ch <- prometheus.MustNewConstMetric(buildsDesc, prometheus.GaugeValue, n, s)
		}
	}
	queues := map[string]float64{queueBuilds: 0, webhook.Queue: 0}
	if err := c.count(ctx, `SELECT queue, COUNT(*) FROM river_job WHERE state IN ('available', 'scheduled', 'retryable') GROUP BY queue`, queues); err != nil {
		ch <- prometheus.NewInvalidMetric(queueDesc, err)
		return
	}
	for q, n := range queues {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, n, q)
	}
}

func (c *dbCollector) count(ctx context.Context, q string, into map[string]float64) error {
	rows, err := c.p.db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return err
		}
		into[k] = float64(n)
	}
	return rows.Err()
}
