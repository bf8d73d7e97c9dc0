package loadform_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/loadform"
)

// BenchmarkParse parses a 200-row form and a ~10 MB one (800 rows with
// every long field near its limit, in text that does not compress), and
// reports the upload's size and the peak live heap while parsing.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct {
		name string
		rows int
		big  bool
	}{{"200rows", 200, false}, {"10MB", 800, true}} {
		upload := benchForm(b, tc.rows, tc.big)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(upload)))
			var peak uint64
			for b.Loop() {
				p := peakHeap(func() {
					form, err := loadform.Parse(bytes.NewReader(upload), int64(len(upload)), loadform.Limits{})
					if err != nil || len(form.Rows) != tc.rows {
						b.Fatalf("Parse: %v", err)
					}
				})
				peak = max(peak, p)
			}
			b.ReportMetric(float64(len(upload))/(1<<20), "MiB-upload")
			b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-heap")
		})
	}
}

// peakHeap runs f and returns the most heap its run held live above what
// was live before, sampled every 200µs.
func peakHeap(f func()) uint64 {
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

func benchForm(b *testing.B, n int, big bool) []byte {
	rng := rand.New(rand.NewSource(1))
	text := func(chars int) string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,"
		s := make([]byte, chars)
		for i := range s {
			s[i] = alphabet[rng.Intn(len(alphabet))]
		}
		return string(s)
	}
	rows := make([]row, n)
	for i := range rows {
		r := newProduct().with(loadform.ColProductTitle, fmt.Sprintf("Product %d", i))
		if big {
			r = r.with(loadform.ColReleaseNotes, text(4900)).with(loadform.ColUsage, text(4900)).
				with(loadform.ColShortDescription, text(loadform.MaxShortDescription-10)).with(loadform.ColLongDescription, text(4900)).
				with(loadform.ColHighlights, text(240)+"\n"+text(240)+"\n"+text(240))
		}
		rows[i] = r
	}
	return fill(b, rows, func(*excelize.File) {})
}
