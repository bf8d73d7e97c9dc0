package vulndb

import (
	"context"
	"fmt"
	"time"
)

// Version identifies the database's content cheaply, so that monitoring
// (S5) can tell whether anything was imported since it last re-matched:
// an import that adds, replaces or removes a record changes at least one
// of its fields.
type Version struct {
	Records int `json:"records"`
	// Date is the date of the data: the newest `modified` among the
	// records (as Summary.NewestModified, which scan reports quote).
	Date time.Time `json:"date,omitzero"`
	// Imported is when the most recently imported record was stored.
	Imported time.Time `json:"imported,omitzero"`
}

// Version reads the database's Version.
func (d *DB) Version(ctx context.Context) (Version, error) {
	var v Version
	var date, imported any
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(modified), MAX(imported_at) FROM vuln_records`).Scan(&v.Records, &date, &imported); err != nil {
		return v, fmt.Errorf("read the vulnerability database's version: %w", err)
	}
	var err error
	if v.Date, err = scanTime(date); err != nil {
		return v, err
	}
	v.Imported, err = scanTime(imported)
	return v, err
}
