package vulndb

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pib-dev/pib/internal/store"
)

// ImportResult counts what an import did.
type ImportResult struct {
	Read      int // records read from the source, including skipped ones
	Imported  int // new records, or newer versions of stored ones
	Unchanged int // records not newer than the stored version
	Withdrawn int // withdrawn records (ignored; a stored older version is removed)
	// NoModified counts the records read without a modified time (missing
	// or 0001-01-01T00:00:00Z, as golang/vulndb writes them): they are
	// imported all the same, and replace a stored one when their content
	// differs.
	NoModified int
	// Skipped are the malformed records, by ID, each with its reason; the
	// rest were imported.
	Skipped []*RecordError
}

// recordFormat is what this pib stores of a record (AliasIDs, related
// CVEs, the database's rating, the alias index). A record stored in an
// older format is replaced at the next import whatever its modified time,
// so an upgraded pib gets every field from data it already has once it
// is imported again.
const recordFormat = 1

// rawRecord is one JSON document read from a zip or directory.
type rawRecord struct {
	name string
	data []byte
}

// Import reads an OSV zip (the layout of osv.dev's per-ecosystem all.zip:
// one record per .json file) or a directory of OSV JSON files, and stores
// every record that is newer than the stored one with the same ID. The
// whole import is one transaction: if it fails, the database is as before.
func (d *DB) Import(ctx context.Context, path string) (*ImportResult, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("import vulnerability data: %w", err)
	}
	var produce func(ctx context.Context, out chan<- rawRecord) error
	if fi.IsDir() {
		produce = func(ctx context.Context, out chan<- rawRecord) error { return readDir(ctx, path, out) }
	} else {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return nil, fmt.Errorf("import %s: not a readable zip file (%w); give an OSV all.zip or a directory of OSV .json records", path, err)
		}
		defer zr.Close()
		produce = func(ctx context.Context, out chan<- rawRecord) error { return readZip(ctx, &zr.Reader, out) }
	}
	return d.importFrom(ctx, produce)
}

func readZip(ctx context.Context, zr *zip.Reader, out chan<- rawRecord) error {
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || !strings.HasSuffix(f.Name, ".json") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("zip entry %s: %w", f.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("zip entry %s: %w", f.Name, err)
		}
		select {
		case out <- rawRecord{name: f.Name, data: data}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func readDir(ctx context.Context, dir string, out chan<- rawRecord) error {
	return filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		select {
		case out <- rawRecord{name: p, data: data}:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
}

type parsed struct {
	rec    *Record
	digest string // of the record's JSON, to tell records without a modified time apart
	err    *RecordError
}

// importFrom decodes records on all CPUs and writes them from one
// goroutine in batched multi-row INSERTs inside a single transaction.
func (d *DB) importFrom(ctx context.Context, produce func(context.Context, chan<- rawRecord) error) (*ImportResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	raws := make(chan rawRecord, 256)
	recs := make(chan parsed, 256)
	var prodErr error
	go func() {
		defer close(raws)
		prodErr = produce(ctx, raws)
	}()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for raw := range raws {
				r, err := parseRecord(raw.data, raw.name)
				var p parsed
				if err != nil {
					if !errors.As(err, &p.err) {
						p.err = &RecordError{ID: idFromName(raw.name, raw.data), Err: err}
					}
				} else {
					sum := sha256.Sum256(raw.data)
					p.rec, p.digest = r, hex.EncodeToString(sum[:])
				}
				select {
				case recs <- p:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(recs) }()

	res := &ImportResult{}
	err := d.db.Tx(ctx, func(tx *sql.Tx) error {
		w, err := newWriter(ctx, tx, d.now(), d.db.Dialect)
		if err != nil {
			return err
		}
		for p := range recs {
			res.Read++
			if p.err != nil {
				res.Skipped = append(res.Skipped, p.err)
				continue
			}
			if p.rec.Modified.IsZero() {
				res.NoModified++
			}
			if err := w.add(p.rec, p.digest, res); err != nil {
				return err
			}
		}
		if prodErr != nil {
			return fmt.Errorf("read vulnerability data: %w", prodErr)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return w.flush()
	})
	// Drain so the decoders and producer end even when the writer failed.
	cancel()
	for range recs {
	}
	if err != nil {
		return nil, fmt.Errorf("import vulnerability data: %w", err)
	}
	sort.Slice(res.Skipped, func(i, j int) bool { return res.Skipped[i].ID < res.Skipped[j].ID })
	return res, nil
}

// writer keeps pending rows and the stored modification times, so a record
// is written only when it is newer than what is stored (or already queued).
type writer struct {
	ctx context.Context
	// rowsPerInsert bounds a multi-row INSERT. SQLite looks "$N"
	// parameters up by name in a linear list, so its statements stay
	// small; PostgreSQL gains from big ones (fewer round trips).
	rowsPerInsert int
	tx            *sql.Tx
	now           time.Time
	stored        map[string]storedRecord
	pending       []pendingRecord
	queued        map[string]int // ID → index in pending
	replaced      []string       // stored IDs to delete before the pending insert
}

// storedRecord is what decides whether a record replaces the stored one.
type storedRecord struct {
	modified time.Time
	digest   string
	format   int
}

// replacedBy reports whether a record read (modified, digest) replaces
// s: any record replaces one of an older format; one without a modified
// time replaces another without one when its content differs; else the
// newer modified time wins.
func (s storedRecord) replacedBy(modified time.Time, digest string) bool {
	if s.format < recordFormat {
		return true
	}
	if modified.IsZero() && s.modified.IsZero() {
		return digest != s.digest
	}
	return modified.After(s.modified)
}

type pendingRecord struct {
	*Record
	digest string
}

func newWriter(ctx context.Context, tx *sql.Tx, now time.Time, dialect store.Dialect) (*writer, error) {
	w := &writer{ctx: ctx, tx: tx, now: now, stored: map[string]storedRecord{}, queued: map[string]int{}, rowsPerInsert: 1000}
	if dialect == store.SQLite {
		w.rowsPerInsert = 32
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, modified, digest, format FROM vuln_records`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var s storedRecord
		if err := rows.Scan(&id, &s.modified, &s.digest, &s.format); err != nil {
			return nil, err
		}
		s.modified = s.modified.UTC()
		w.stored[id] = s
	}
	return w, rows.Err()
}

const batchRecords = 500

func (w *writer) add(r *Record, digest string, res *ImportResult) error {
	r.Modified = r.Modified.UTC()
	now := storedRecord{modified: r.Modified, digest: digest, format: recordFormat}
	if i, ok := w.queued[r.ID]; ok {
		// The same ID twice in one source: keep the newer.
		if r.Modified.After(w.pending[i].Modified) && r.Withdrawn == nil {
			w.pending[i] = pendingRecord{r, digest}
			w.stored[r.ID] = now
		}
		res.Unchanged++
		return nil
	}
	prev, exists := w.stored[r.ID]
	if r.Withdrawn != nil {
		res.Withdrawn++
		if exists && (prev.format < recordFormat || !prev.modified.After(r.Modified)) {
			delete(w.stored, r.ID)
			return w.delete([]string{r.ID})
		}
		return nil
	}
	if exists && !prev.replacedBy(r.Modified, digest) {
		res.Unchanged++
		return nil
	}
	res.Imported++
	if exists {
		w.replaced = append(w.replaced, r.ID)
	}
	w.stored[r.ID] = now
	w.queued[r.ID] = len(w.pending)
	w.pending = append(w.pending, pendingRecord{r, digest})
	if len(w.pending) >= batchRecords {
		return w.flush()
	}
	return nil
}

func (w *writer) delete(ids []string) error {
	for start := 0; start < len(ids); start += batchRecords {
		chunk := ids[start:min(start+batchRecords, len(ids))]
		args := make([]any, len(chunk))
		ph := make([]string, len(chunk))
		for i, id := range chunk {
			args[i] = id
			ph[i] = fmt.Sprintf("$%d", i+1)
		}
		in := "(" + strings.Join(ph, ",") + ")"
		if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM vuln_affected WHERE vuln_id IN `+in, args...); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM vuln_aliases WHERE vuln_id IN `+in, args...); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM vuln_records WHERE id IN `+in, args...); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) flush() error {
	if len(w.replaced) > 0 {
		if err := w.delete(w.replaced); err != nil {
			return err
		}
		w.replaced = w.replaced[:0]
	}
	if len(w.pending) == 0 {
		return nil
	}
	var recArgs []any
	var recRows []string
	flushRecords := func() error {
		if len(recRows) == 0 {
			return nil
		}
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO vuln_records (id, modified, summary, aliases, severity, imported_at, related, rating, format, digest) VALUES `+strings.Join(recRows, ","), recArgs...)
		recArgs, recRows = recArgs[:0], recRows[:0]
		return err
	}
	var affArgs []any
	var affRows []string
	flushAffected := func() error {
		if len(affRows) == 0 {
			return nil
		}
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO vuln_affected (vuln_id, ecosystem, package, data) VALUES `+strings.Join(affRows, ","), affArgs...)
		affArgs, affRows = affArgs[:0], affRows[:0]
		return err
	}
	// (alias, record) pairs, inserted once their records are.
	var aliasPairs [][2]string
	for _, r := range w.pending {
		ids := r.AliasIDs()
		aliases, _ := json.Marshal(nonNil(ids))
		related, _ := json.Marshal(nonNil(r.RelatedCVEs()))
		sev, _ := json.Marshal(nonNilSev(r.Severity))
		n := len(recArgs)
		recRows = append(recRows, fmt.Sprintf("($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10))
		recArgs = append(recArgs, r.ID, r.Modified, summaryOf(r.Record), string(aliases), string(sev), w.now,
			string(related), r.DatabaseSpecific.Severity, recordFormat, r.digest)
		if len(recRows) >= w.rowsPerInsert {
			if err := flushRecords(); err != nil {
				return err
			}
		}
		for _, a := range ids {
			aliasPairs = append(aliasPairs, [2]string{a, r.ID})
		}
	}
	if err := flushRecords(); err != nil {
		return err
	}
	for start := 0; start < len(aliasPairs); start += w.rowsPerInsert {
		chunk := aliasPairs[start:min(start+w.rowsPerInsert, len(aliasPairs))]
		args := make([]any, 0, 2*len(chunk))
		rows := make([]string, len(chunk))
		for i, p := range chunk {
			rows[i] = fmt.Sprintf("($%d,$%d)", 2*i+1, 2*i+2)
			args = append(args, p[0], p[1])
		}
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO vuln_aliases (alias, vuln_id) VALUES `+strings.Join(rows, ","), args...); err != nil {
			return err
		}
	}
	for _, r := range w.pending {
		seen := map[[2]string]bool{}
		for _, a := range r.Affected {
			eco, name := a.Package.Ecosystem, NormalizeName(baseEcosystem(a.Package.Ecosystem), a.Package.Name)
			if eco == "" || name == "" {
				continue
			}
			key := [2]string{eco, name}
			if seen[key] {
				// Several entries for one package (e.g. two ranges
				// published separately) share one row.
				continue
			}
			seen[key] = true
			data, err := json.Marshal(mergeAffected(r.Affected, eco, name))
			if err != nil {
				return err
			}
			n := len(affArgs)
			affRows = append(affRows, fmt.Sprintf("($%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4))
			affArgs = append(affArgs, r.ID, eco, name, string(data))
			if len(affRows) >= w.rowsPerInsert {
				if err := flushAffected(); err != nil {
					return err
				}
			}
		}
	}
	if err := flushAffected(); err != nil {
		return err
	}
	w.pending = w.pending[:0]
	clear(w.queued)
	return nil
}

// mergeAffected joins every affected entry of a record for one package:
// OSV allows several, and a version is affected if any of them says so.
func mergeAffected(all []Affected, eco, name string) affectedData {
	var ad affectedData
	for _, a := range all {
		if a.Package.Ecosystem != eco || NormalizeName(baseEcosystem(eco), a.Package.Name) != name {
			continue
		}
		ad.Ranges = append(ad.Ranges, a.Ranges...)
		ad.Versions = append(ad.Versions, a.Versions...)
		ad.Severity = append(ad.Severity, a.Severity...)
		if ad.EcosystemSpecific.Urgency == "" {
			ad.EcosystemSpecific = a.EcosystemSpecific
		}
	}
	return ad
}

// summaryOf is the record's summary, else the first line of its details
// (Debian's CVE records have only details).
func summaryOf(r *Record) string {
	if r.Summary != "" {
		return r.Summary
	}
	s := strings.TrimSpace(r.Details)
	if i := strings.IndexAny(s, "\n"); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > 200 {
		s = strings.TrimSpace(string(r[:200])) + "…"
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilSev(s []Severity) []Severity {
	if s == nil {
		return []Severity{}
	}
	return s
}
