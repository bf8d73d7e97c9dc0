package api_test

import (
	"fmt"
	"math/rand"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// BenchmarkPublishRoundTrip measures the load form round trip of issue
// 10's closing note through the API, on both engines: download the form,
// fill 200 new product rows, upload it, approve it (ms per round trip);
// and the peak live heap of the API process (in this process, as
// loadform's BenchmarkParse samples it) while it reads, parses and
// submits a ~10 MB form of 800 rows with every long field near its limit.
// The API runs in the test process, so the peak also holds the test's
// reading of the answer (the change request, ~10 MB of JSON): an upper
// bound for pib serve.
func BenchmarkPublishRoundTrip(b *testing.B) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			c := newCatalogEnv(b, storetest.Open(b, d), loadform.Limits{})
			seller := c.account("acme", accounts.Seller)
			c.successfulGroup(seller, "Shop20Linux1", "linux", "2.0")
			round := 0 // product titles are new in each round trip
			b.Run("200rows", func(b *testing.B) {
				for b.Loop() {
					round++
					rows := make([]formRow, 200)
					for i := range rows {
						rows[i] = newProductRow(fmt.Sprintf("Product %d-%d", round, i), "2.0", "Shop20Linux1", "")
					}
					var ch api.ChangeRequest
					if code := c.submit(seller, fillForm(b, c.template(seller), rows...), &ch); code != 201 || len(ch.Rows) != 200 {
						b.Fatalf("submit: %d %+v", code, ch)
					}
					c.approve(ch.ID)
				}
			})
			b.Run("10MB", func(b *testing.B) {
				form := bigForm(b, c.template(seller), 800)
				b.SetBytes(int64(len(form)))
				var peak uint64
				for b.Loop() {
					p := peakLiveHeap(func() {
						var ch api.ChangeRequest
						if code := c.submit(seller, form, &ch); code != 201 || len(ch.Rows) != 800 {
							b.Fatalf("submit: %d", code)
						}
					})
					peak = max(peak, p) // pending requests take no title: the same form passes again
				}
				b.ReportMetric(float64(len(form))/(1<<20), "MiB-upload")
				b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-heap")
			})
		})
	}
}

var bigRound atomic.Int64 // a new seed and titles per form

// bigForm fills n new product rows whose long fields are near their
// limits, in text that does not compress.
func bigForm(b *testing.B, tmpl []byte, n int) []byte {
	round := bigRound.Add(1)
	rng := rand.New(rand.NewSource(round))
	text := func(chars int) string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,"
		s := make([]byte, chars)
		for i := range s {
			s[i] = alphabet[rng.Intn(len(alphabet))]
		}
		return string(s)
	}
	rows := make([]formRow, n)
	for i := range rows {
		r := newProductRow(fmt.Sprintf("Big %d-%d", round, i), "2.0", "Shop20Linux1", "")
		r[loadform.ColReleaseNotes], r[loadform.ColUsage], r[loadform.ColLongDescription] = text(4900), text(4900), text(4900)
		r[loadform.ColShortDescription] = text(490)
		r[loadform.ColHighlights] = text(240) + "\n" + text(240) + "\n" + text(240)
		rows[i] = r
	}
	return fillForm(b, tmpl, rows...)
}

// peakLiveHeap runs f and returns the most heap its run held live above
// what was live before, sampled every 200µs (as loadform's BenchmarkParse).
func peakLiveHeap(f func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(done)
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}
