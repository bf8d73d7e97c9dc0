//go:build linux

package monitor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/vulndb"
)

// Errors callers test with errors.Is.
var (
	// ErrNotMonitored is an image that is not one that matters (S5), or
	// does not exist.
	ErrNotMonitored = problem.New(problem.NotFound, "image not monitored")
	// ErrNoAnnouncer is a Monitor asked to run in a process whose
	// pipeline works no jobs, through which it announces changes.
	ErrNoAnnouncer = errors.New("monitoring announces changes through the pipeline's job queue, and this process works no jobs; run it in pib serve or pib worker with --workers 1 or more")
)

// Announcer records and delivers announcements (*pipeline.Pipeline).
type Announcer interface {
	// Announce records reason in build id's history and queues event for
	// its owner's webhook, in tx.
	Announce(ctx context.Context, tx *sql.Tx, id, event, reason string, body func(id string, at time.Time) ([]byte, error)) error
	// Notify queues event for account's webhook, in tx.
	Notify(ctx context.Context, tx *sql.Tx, account, event string, body func(id string, at time.Time) ([]byte, error)) error
}

// Config configures a Monitor. Zero values take the defaults named.
type Config struct {
	Inventories *inventories.Store
	VulnDB      *vulndb.DB
	// Policy decides the verdict the newest data would give (S4); zero:
	// scan.DefaultPolicy. It should be the scans' own (pib serve --policy).
	Policy scan.Policy
	// Refresh downloads and imports new vulnerability data (pib vulndb
	// update's conditional requests); nil when there is no network.
	Refresh func(ctx context.Context) error
	// RefreshInterval is how often the refresh job runs; 0 (the
	// default): never.
	RefreshInterval time.Duration
	// WatchInterval is how often the watch job looks whether the data
	// changed since the last re-match (default 1m; one cheap query).
	WatchInterval time.Duration
	// Batch is how many images one transaction writes (default 256).
	Batch  int
	Logger *slog.Logger
	Now    func() time.Time
}

// Monitor re-matches the images that matter when the vulnerability data
// changes and announces what changed (S5).
type Monitor struct {
	db  *store.DB
	cfg Config

	mu        sync.Mutex // one run at a time in this process
	announcer Announcer
}

// New returns a Monitor over db. Its announcer is the pipeline that
// registers its jobs (Register), or the one given to SetAnnouncer.
func New(db *store.DB, cfg Config) *Monitor {
	if cfg.Policy.MinSeverity == "" {
		cfg.Policy = scan.DefaultPolicy()
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Monitor{db: db, cfg: cfg}
}

// SetAnnouncer sets what announces changes (Register sets the pipeline).
func (m *Monitor) SetAnnouncer(a Announcer) {
	m.mu.Lock()
	m.announcer = a
	m.mu.Unlock()
}

func (m *Monitor) now() time.Time { return m.cfg.Now().UTC() }

// Change is one vulnerability ID added to or withdrawn from an image's
// findings.
type Change struct {
	ID       string        `json:"id"`
	Severity scan.Severity `json:"severity"`
	// Packages are the installed packages it affects (affected).
	Packages     []string `json:"packages"`
	FixedVersion string   `json:"fixed_version,omitempty"`
}

// Result is what one run did.
type Result struct {
	// Images is how many images were matched again.
	Images int `json:"images"`
	// Changed is how many of them had vulnerability IDs added or
	// withdrawn (each announced).
	Changed int `json:"changed"`
	// NotMonitored counts images that matter but have no kept inventory;
	// Hint says what to do about them.
	NotMonitored int    `json:"not_monitored"`
	Hint         string `json:"hint,omitempty"`
	// Data is the vulnerability data the run matched against.
	Data    vulndb.Version `json:"data"`
	Seconds float64        `json:"seconds"`
}

// notMonitoredHint says what to do about images without inventory.
const notMonitoredHint = "images scanned before pib kept inventories are not monitored; a new build of their group (pib groups submit) or a new private image build scans and keeps one"

// Run re-matches the images that matter (imageID "": all of them) against
// the current vulnerability data and announces every change; reason names
// what started it, for the log and the run's record.
func (m *Monitor) Run(ctx context.Context, imageID, reason string) (*Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.announcer == nil {
		return nil, ErrNoAnnouncer
	}
	start := m.now()
	ver, err := m.cfg.VulnDB.Version(ctx)
	if err != nil {
		return nil, err
	}
	targets, err := m.targets(ctx, imageID)
	if err != nil {
		return nil, err
	}
	if imageID != "" && len(targets) == 0 {
		e := ErrNotMonitored.Errorf("image %s is not monitored: only the latest Successful build of each group, published images and private images are (S5); list images with pib image ls", imageID)
		e.Field = "image_id"
		return nil, e
	}
	ids := make([]string, 0, len(targets))
	for id := range targets {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	res := &Result{Data: ver}
	run := &run{m: m, ver: ver, targets: targets, now: start}
	err = scan.Rematch(ctx, m.cfg.VulnDB, m.each(ctx, ids), func(id string, findings []scan.Finding, _ []string) error {
		res.Images++
		run.pending = append(run.pending, rematched{imageID: id, findings: findings})
		if len(run.pending) >= m.cfg.Batch {
			return run.flush(ctx)
		}
		return nil
	})
	if err == nil {
		err = run.flush(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("re-match images (S5): %w", err)
	}
	res.Changed = run.changed
	res.NotMonitored = len(targets) - res.Images
	if res.NotMonitored > 0 {
		res.Hint = notMonitoredHint
	}
	res.Seconds = m.now().Sub(start).Seconds()
	if imageID == "" {
		if _, err := m.db.ExecContext(ctx, `INSERT INTO monitor_runs (id, reason, data_records, data_date, data_imported, images, changed, not_monitored, started_at, duration_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, newID("mon-"), reason, ver.Records, nullTime(ver.Date), nullTime(ver.Imported),
			res.Images, res.Changed, res.NotMonitored, start, int64(res.Seconds*1000)); err != nil {
			return nil, fmt.Errorf("record the monitoring run: %w", err)
		}
	}
	m.cfg.Logger.Info("vulnerability monitoring: images re-matched", "reason", reason, "images", res.Images, "changed", res.Changed,
		"not_monitored", res.NotMonitored, "data_date", ver.Date, "seconds", res.Seconds)
	return res, nil
}

// each walks the inventories of ids with one reader per CPU: reading an
// inventory (a blob to inflate and decode) is most of a run's work.
func (m *Monitor) each(ctx context.Context, ids []string) scan.Inventories {
	return func(fn func(string, *scan.Inventory) error) error {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		var wg sync.WaitGroup
		n := max(1, runtime.GOMAXPROCS(0))
		per := max(1, (len(ids)+n-1)/n)
		for start := 0; start < len(ids); start += per {
			part := ids[start:min(start+per, len(ids))]
			wg.Go(func() {
				if err := m.cfg.Inventories.Each(ctx, part, fn); err != nil {
					cancel(err) // the first error stops the other readers
				}
			})
		}
		wg.Wait()
		if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
			return err
		}
		return nil
	}
}

// DataChanged reports whether the vulnerability data differs from what
// the last full run matched against (true when there was none).
func (m *Monitor) DataChanged(ctx context.Context) (bool, error) {
	ver, err := m.cfg.VulnDB.Version(ctx)
	if err != nil {
		return false, err
	}
	var last vulndb.Version
	var date, imported sql.NullTime
	err = m.db.QueryRowContext(ctx, `SELECT data_records, data_date, data_imported FROM monitor_runs ORDER BY started_at DESC, id DESC LIMIT 1`).
		Scan(&last.Records, &date, &imported)
	if errors.Is(err, sql.ErrNoRows) {
		return ver.Records > 0, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the last monitoring run: %w", err)
	}
	return ver.Records != last.Records || !ver.Date.Equal(date.Time.UTC()) || !ver.Imported.Equal(imported.Time.UTC()), nil
}

// target is an image that matters and what it belongs to.
type target struct {
	imageID, owner string
	// build is the build that made it ("" for a published image not built
	// here), with its kind, group and OS version.
	build, kind, groupID, groupName, osName string
	// productID and versionID: the catalog entry it is published in, or
	// the private build's fulfillment.
	productID, versionID string
}

// targetsSQL lists the images that matter: the latest Successful test
// build of each group on each OS version, every private image, and every
// image a catalog version offers; an image may come twice, builds first.
// A private image's row leaves out its group's name: the buyer it is
// announced to knows the product, not the seller's name for the group.
const targetsSQL = `SELECT b.image_id, b.owner, b.id, b.kind, b.group_id, g.name, b.os_name, '' AS product_id, '' AS version_id, 0 AS pref
	FROM builds b JOIN package_groups g ON g.id = b.group_id JOIN images i ON i.id = b.image_id
	WHERE b.kind = '' AND b.state = 'Successful' AND b.submission = (SELECT MAX(c.submission) FROM builds c
		WHERE c.group_id = b.group_id AND c.os_name = b.os_name AND c.kind = '' AND c.state = 'Successful')
UNION ALL
SELECT b.image_id, b.owner, b.id, b.kind, b.group_id, '', b.os_name, COALESCE(pb.product_id, ''), COALESCE(pb.version_id, ''), 0
	FROM builds b JOIN images i ON i.id = b.image_id
	LEFT JOIN private_builds pb ON pb.build_id = b.id
	WHERE b.kind = 'private' AND b.image_id <> ''
UNION ALL
SELECT f.image_id, i.owner, '', '', '', '', '', v.product_id, v.id, 1
	FROM fulfillment_options f JOIN product_versions v ON v.id = f.version_id JOIN images i ON i.id = f.image_id
	WHERE f.kind = 'image'`

// targets returns the images that matter by ID (only imageID's, if set).
func (m *Monitor) targets(ctx context.Context, imageID string) (map[string]*target, error) {
	q, args := `SELECT * FROM (`+targetsSQL+`) t ORDER BY pref`, []any{}
	if imageID != "" {
		q, args = `SELECT * FROM (`+targetsSQL+`) t WHERE image_id = $1 ORDER BY pref`, []any{imageID}
	}
	rows, err := m.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list the images that matter: %w", err)
	}
	defer rows.Close()
	out := map[string]*target{}
	for rows.Next() {
		var t target
		var pref int
		if err := rows.Scan(&t.imageID, &t.owner, &t.build, &t.kind, &t.groupID, &t.groupName, &t.osName, &t.productID, &t.versionID, &pref); err != nil {
			return nil, err
		}
		if prev := out[t.imageID]; prev != nil {
			if prev.productID == "" {
				prev.productID, prev.versionID = t.productID, t.versionID
			}
			continue
		}
		out[t.imageID] = &t
	}
	return out, rows.Err()
}

// vuln is one finding as monitoring keeps it: enough to tell what
// changed and to show it.
type vuln struct {
	ID           string        `json:"id"`
	Package      string        `json:"package"`
	Severity     scan.Severity `json:"severity"`
	FixedVersion string        `json:"fixed_version,omitempty"`
}

func compact(fs []scan.Finding) []vuln {
	out := make([]vuln, len(fs))
	for i, f := range fs {
		out[i] = vuln{ID: f.ID, Package: f.Package, Severity: f.Severity, FixedVersion: f.FixedVersion}
	}
	return out
}

// diff returns the IDs in now and not in before (added) and the reverse
// (withdrawn), each with its highest severity and the packages it names.
func diff(before, now []vuln) (added, withdrawn []Change) {
	return missing(now, before), missing(before, now)
}

// missing groups the vulns of a whose ID b lacks, by ID, sorted by
// severity (highest first), then ID.
func missing(a, b []vuln) []Change {
	inB := map[string]bool{}
	for _, v := range b {
		inB[v.ID] = true
	}
	byID := map[string]*Change{}
	var out []*Change
	for _, v := range a {
		if inB[v.ID] {
			continue
		}
		c := byID[v.ID]
		if c == nil {
			c = &Change{ID: v.ID, Severity: v.Severity, FixedVersion: v.FixedVersion}
			byID[v.ID] = c
			out = append(out, c)
		}
		if rank(v.Severity) > rank(c.Severity) {
			c.Severity = v.Severity
		}
		if !containsString(c.Packages, v.Package) {
			c.Packages = append(c.Packages, v.Package)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if rank(out[i].Severity) != rank(out[j].Severity) {
			return rank(out[i].Severity) > rank(out[j].Severity)
		}
		return out[i].ID < out[j].ID
	})
	res := make([]Change, len(out))
	for i, c := range out {
		res[i] = *c
	}
	return res
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func rank(s scan.Severity) int {
	switch s {
	case scan.Low:
		return 1
	case scan.Medium:
		return 2
	case scan.High:
		return 3
	case scan.Critical:
		return 4
	}
	return 0
}

func digest(v []vuln) (string, string) {
	raw, _ := json.Marshal(v)
	sum := sha256.Sum256(raw)
	return string(raw), hex.EncodeToString(sum[:])
}

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// listChanges names up to ten changes for a history entry.
func listChanges(cs []Change) string {
	var parts []string
	for i, c := range cs {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("… %d more", len(cs)-10))
			break
		}
		s := fmt.Sprintf("%s (%s, %s", c.ID, c.Severity, strings.Join(c.Packages, " "))
		if c.FixedVersion != "" {
			s += ", fixed in " + c.FixedVersion
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, ", ")
}

// day formats a data date as the status view and history show it.
func day(t time.Time) string {
	if t.IsZero() {
		return "unknown date"
	}
	return t.UTC().Format("2006-01-02")
}
