package vulndb_test

import (
	"context"
	"testing"

	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/vulndb/vulndbtest"
)

// BenchmarkImportDebianZip imports the shared 44k-record Debian zip into a
// fresh database per iteration (target ≤ 30 s). Run with
// go test -run '^$' -bench ImportDebianZip -benchtime 1x ./internal/vulndb/
func BenchmarkImportDebianZip(b *testing.B) {
	zip := vulndbtest.DebianZip(b)
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db := vulndb.New(storetest.Open(b, d))
				b.StartTimer()
				res, err := db.Import(context.Background(), zip)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(res.Imported), "records")
			}
		})
	}
}
