package vulndb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/store"
)

// DB is the vulnerability database inside pib's metadata store.
type DB struct {
	db  *store.DB
	now func() time.Time
}

// New returns the vulnerability database kept in db (its tables come
// with the store's migrations).
func New(db *store.DB) *DB {
	return &DB{db: db, now: func() time.Time { return time.Now().UTC() }}
}

// affectedData is what one vuln_affected row stores: everything needed to
// decide whether a version is affected, and the entry's own severity.
type affectedData struct {
	Ranges            []Range           `json:"ranges,omitempty"`
	Versions          []string          `json:"versions,omitempty"`
	Severity          []Severity        `json:"severity,omitempty"`
	EcosystemSpecific EcosystemSpecific `json:"ecosystem_specific,omitzero"`
}

// Entry is one affected entry of a stored record, with the record fields a
// finding reports.
type Entry struct {
	ID       string
	Modified time.Time
	Summary  string
	// Aliases are the other IDs the record is known by
	// (Record.AliasIDs); Related the CVEs it only lists as related
	// (Record.RelatedCVEs), which rate it when it has no rating.
	Aliases  []string
	Related  []string
	Severity []Severity
	// Rating is the record's database_specific.severity (GitHub's LOW …
	// CRITICAL), "" without one.
	Rating string

	Ecosystem string
	Package   string
	Affected  Affected
}

// NormalizeName gives the form package names are indexed under, so that
// lookups agree with the ecosystem's own idea of "the same name". PyPI
// names compare after PEP 503 normalisation; the rest compare exactly.
func NormalizeName(ecosystem, name string) string {
	if ecosystem == "PyPI" {
		name = strings.ToLower(name)
		return strings.NewReplacer("_", "-", ".", "-").Replace(name)
	}
	return name
}

// Lookup returns the stored affected entries for the given package names
// in one ecosystem. An ecosystem ending in ":" is a prefix: "Red Hat:" …
// matches every Red Hat product stream. Entries come sorted by package,
// then ID.
func (d *DB) Lookup(ctx context.Context, ecosystem string, names []string) ([]Entry, error) {
	if len(names) == 0 {
		return nil, nil
	}
	uniq := map[string]bool{}
	for _, n := range names {
		uniq[NormalizeName(baseEcosystem(ecosystem), n)] = true
	}
	keys := make([]string, 0, len(uniq))
	for n := range uniq {
		keys = append(keys, n)
	}
	sort.Strings(keys)

	ecoCond := "a.ecosystem = $1"
	if strings.HasSuffix(ecosystem, ":") {
		ecoCond = `a.ecosystem LIKE $1 ESCAPE '\'`
		ecosystem = strings.NewReplacer("%", `\%`, "_", `\_`).Replace(ecosystem) + "%"
	}
	var out []Entry
	for start := 0; start < len(keys); start += 500 {
		chunk := keys[start:min(start+500, len(keys))]
		args := []any{ecosystem}
		ph := make([]string, len(chunk))
		for i, n := range chunk {
			args = append(args, n)
			ph[i] = fmt.Sprintf("$%d", i+2)
		}
		q := `SELECT a.vuln_id, a.ecosystem, a.package, a.data, r.modified, r.summary, r.aliases, r.severity, r.related, r.rating
			FROM vuln_affected a JOIN vuln_records r ON r.id = a.vuln_id
			WHERE ` + ecoCond + ` AND a.package IN (` + strings.Join(ph, ",") + `)`
		rows, err := d.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("look up vulnerabilities: %w", err)
		}
		for rows.Next() {
			var e Entry
			var data, aliases, severity, related string
			if err := rows.Scan(&e.ID, &e.Ecosystem, &e.Package, &data, &e.Modified, &e.Summary, &aliases, &severity, &related, &e.Rating); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read vulnerability: %w", err)
			}
			var ad affectedData
			if err := json.Unmarshal([]byte(data), &ad); err != nil {
				rows.Close()
				return nil, fmt.Errorf("vulnerability %s: stored entry is corrupt (%v); re-import the database", e.ID, err)
			}
			e.Affected.Package.Ecosystem, e.Affected.Package.Name = e.Ecosystem, e.Package
			e.Affected.Ranges, e.Affected.Versions, e.Affected.Severity, e.Affected.EcosystemSpecific = ad.Ranges, ad.Versions, ad.Severity, ad.EcosystemSpecific
			if err := json.Unmarshal([]byte(aliases), &e.Aliases); err != nil {
				rows.Close()
				return nil, fmt.Errorf("vulnerability %s: stored aliases are corrupt: %w", e.ID, err)
			}
			if err := json.Unmarshal([]byte(severity), &e.Severity); err != nil {
				rows.Close()
				return nil, fmt.Errorf("vulnerability %s: stored severity is corrupt: %w", e.ID, err)
			}
			if err := json.Unmarshal([]byte(related), &e.Related); err != nil {
				rows.Close()
				return nil, fmt.Errorf("vulnerability %s: stored related IDs are corrupt: %w", e.ID, err)
			}
			e.Modified = e.Modified.UTC()
			out = append(out, e)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Package != out[j].Package {
			return out[i].Package < out[j].Package
		}
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Ecosystem < out[j].Ecosystem
	})
	return out, nil
}

// baseEcosystem strips the release from an ecosystem: "Debian:12" → "Debian".
func baseEcosystem(eco string) string {
	if i := strings.IndexByte(eco, ':'); i >= 0 {
		return eco[:i]
	}
	return eco
}

// Summary is the size and age of the whole database, as a scan report
// quotes it.
type Summary struct {
	Records        int       `json:"records"`
	NewestModified time.Time `json:"newest_modified"`
}

// EcosystemStatus describes what is stored for one ecosystem.
type EcosystemStatus struct {
	Ecosystem      string
	Records        int
	NewestModified time.Time
	ImportedAt     time.Time
}

// SourceStatus is what `pib vulndb update` remembers about one download.
type SourceStatus struct {
	Source       string
	ETag         string
	LastModified string
	ImportedAt   time.Time
}

// Status is the database's content by ecosystem and its download sources.
type Status struct {
	Summary
	Ecosystems []EcosystemStatus
	Sources    []SourceStatus
}

// Summary counts the records and finds the newest modification time.
func (d *DB) Summary(ctx context.Context) (Summary, error) {
	var s Summary
	var newest any
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(modified) FROM vuln_records`).Scan(&s.Records, &newest); err != nil {
		return s, fmt.Errorf("read vulnerability database summary: %w", err)
	}
	t, err := scanTime(newest)
	s.NewestModified = t
	return s, err
}

// Status reports records per ecosystem, the newest `modified` among them
// and when they were last imported.
func (d *DB) Status(ctx context.Context) (*Status, error) {
	sum, err := d.Summary(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Summary: sum}
	rows, err := d.db.QueryContext(ctx, `SELECT a.ecosystem, COUNT(DISTINCT a.vuln_id), MAX(r.modified), MAX(r.imported_at)
		FROM vuln_affected a JOIN vuln_records r ON r.id = a.vuln_id
		GROUP BY a.ecosystem ORDER BY a.ecosystem`)
	if err != nil {
		return nil, fmt.Errorf("read vulnerability database status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e EcosystemStatus
		var mod, imp any
		if err := rows.Scan(&e.Ecosystem, &e.Records, &mod, &imp); err != nil {
			return nil, err
		}
		if e.NewestModified, err = scanTime(mod); err != nil {
			return nil, err
		}
		if e.ImportedAt, err = scanTime(imp); err != nil {
			return nil, err
		}
		st.Ecosystems = append(st.Ecosystems, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	srows, err := d.db.QueryContext(ctx, `SELECT source, etag, last_modified, imported_at FROM vuln_sources ORDER BY source`)
	if err != nil {
		return nil, err
	}
	defer srows.Close()
	for srows.Next() {
		var s SourceStatus
		if err := srows.Scan(&s.Source, &s.ETag, &s.LastModified, &s.ImportedAt); err != nil {
			return nil, err
		}
		s.ImportedAt = s.ImportedAt.UTC()
		st.Sources = append(st.Sources, s)
	}
	return st, srows.Err()
}

// scanTime reads an aggregate of a TIMESTAMP column. PostgreSQL returns a
// time; SQLite loses the column type in MAX() and returns the stored text.
func scanTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return t.UTC(), nil
	case []byte:
		return parseStoredTime(string(t))
	case string:
		return parseStoredTime(t)
	}
	return time.Time{}, fmt.Errorf("unexpected timestamp value %T", v)
}

func parseStoredTime(s string) (time.Time, error) {
	for _, layout := range []string{
		"2006-01-02 15:04:05.999999999-07:00",
		"2006-01-02 15:04:05.999999999 -0700 MST",
		time.RFC3339Nano,
		"2006-01-02 15:04:05.999999999",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable stored timestamp %q", s)
}

// sourceState returns the validators remembered for a download URL.
func (d *DB) sourceState(ctx context.Context, source string) (etag, lastModified string, err error) {
	err = d.db.QueryRowContext(ctx, `SELECT etag, last_modified FROM vuln_sources WHERE source = $1`, source).Scan(&etag, &lastModified)
	if err == sql.ErrNoRows {
		return "", "", nil
	}
	return etag, lastModified, err
}

func (d *DB) saveSourceState(ctx context.Context, source, etag, lastModified string) error {
	return d.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM vuln_sources WHERE source = $1`, source); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO vuln_sources (source, etag, last_modified, imported_at) VALUES ($1, $2, $3, $4)`,
			source, etag, lastModified, d.now())
		return err
	})
}

// Rating is what one stored record says of its vulnerability's severity.
type Rating struct {
	ID       string
	Severity []Severity // the record's own severity entries (CVSS vectors)
	Database string     // its database_specific.severity
}

// Ratings returns, for each of ids, the ratings of the stored records
// that are that vulnerability: the record with that ID and every record
// listing it as an alias (Record.AliasIDs). A scan rates a finding
// without a rating of its own by those of the IDs it is known by: a
// Debian DSA by the CVEs it fixes, a Go record by the GitHub advisory it
// aliases, or that aliases it.
func (d *DB) Ratings(ctx context.Context, ids []string) (map[string][]Rating, error) {
	out := map[string][]Rating{}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		ph := make([]string, len(chunk))
		for i, id := range chunk {
			args[i] = id
			ph[i] = fmt.Sprintf("$%d", i+1)
		}
		in := strings.Join(ph, ",")
		rows, err := d.db.QueryContext(ctx, `SELECT id, id, severity, rating FROM vuln_records WHERE id IN (`+in+`)
			UNION SELECT l.alias, r.id, r.severity, r.rating FROM vuln_aliases l JOIN vuln_records r ON r.id = l.vuln_id WHERE l.alias IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read severities: %w", err)
		}
		for rows.Next() {
			var key, sev string
			var r Rating
			if err := rows.Scan(&key, &r.ID, &sev, &r.Database); err != nil {
				rows.Close()
				return nil, err
			}
			if err := json.Unmarshal([]byte(sev), &r.Severity); err != nil {
				rows.Close()
				return nil, fmt.Errorf("vulnerability %s: stored severity is corrupt (%v); re-import the database", r.ID, err)
			}
			out[key] = append(out[key], r)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for _, rs := range out {
		sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	}
	return out, nil
}
