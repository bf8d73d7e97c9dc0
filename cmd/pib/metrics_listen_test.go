//go:build linux

package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// pib serve --metrics-listen: the scraper's address answers /metrics
// without a token, and nothing else.
func TestServeMetricsListener(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pib_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	errc := make(chan error, 1)
	ms, err := serveMetrics(addr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), errc)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "pib_test_total 1") {
		t.Fatalf("GET /metrics on the metrics listener: %d\n%.300s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + addr + "/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /v1/whoami on the metrics listener: %d, want 404", resp.StatusCode)
	}
	if _, err := serveMetrics(addr, nil, errc); err == nil || !strings.Contains(err.Error(), "--metrics-listen") {
		t.Fatalf("a second listener on %s: %v, want an error naming --metrics-listen", addr, err)
	}
}
