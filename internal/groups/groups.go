//go:build linux

// Package groups holds package groups: a name, one platform, the OS
// versions to build on, the packages and which one is the installer. It
// enforces the naming rules N1–N2 and the package rules P1–P4 of SPEC.md
// when a group is created; every rejection names its rule and field.
package groups

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// Group is one package group.
type Group struct {
	ID          string              `json:"id"`
	Owner       string              `json:"owner"`
	Name        string              `json:"name"`
	Platform    string              `json:"platform"`
	OSVersions  []string            `json:"os_versions"`
	InstallerID string              `json:"installer_id"`
	Packages    []*packages.Package `json:"packages"`
	// SoftwareVersion is the version of the software the group installs;
	// F1 attaches a group only to the catalog version of that title.
	SoftwareVersion string     `json:"software_version,omitempty"`
	Created         time.Time  `json:"created"`
	Submitted       *time.Time `json:"submitted,omitempty"`
}

// Installer returns the group's installer package.
func (g *Group) Installer() *packages.Package {
	for _, p := range g.Packages {
		if p.ID == g.InstallerID {
			return p
		}
	}
	return nil
}

// Spec is what a seller asks for.
type Spec struct {
	Name        string   `json:"name"`
	Platform    string   `json:"platform"`
	OSVersions  []string `json:"os_versions"`
	PackageIDs  []string `json:"package_ids"`
	InstallerID string   `json:"installer_id"`
	// SoftwareVersion is optional: 1–100 printable characters (F1).
	SoftwareVersion string `json:"software_version,omitempty"`
}

func invalid(rule, field, format string, args ...any) *problem.Error {
	return &problem.Error{Code: problem.Invalid, Rule: rule, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Errors callers test with errors.Is.
var (
	// ErrNotFound is returned for an unknown group or one of another account.
	ErrNotFound = problem.New(problem.NotFound, "package group not found")
	// ErrBadCursor is returned for a cursor ListPage did not make.
	ErrBadCursor = &problem.Error{Code: problem.Invalid, Field: "cursor", Message: "cursor is not one this server gave out"}
)

// InstallerTypes are the installer file extensions per platform (P2).
var InstallerTypes = map[string][]string{
	"linux":   {".exe", ".rpm", ".deb", ".sh", ".run"},
	"windows": {".msi", ".ps1", ".bat", ".exe"},
}

// IsInstaller reports whether a file named name can be the installer of a
// group for platform (P2): its extension, in any case, is one of
// InstallerTypes[platform]. pib build checks its --installer with it too.
func IsInstaller(platform, name string) bool {
	return slices.Contains(InstallerTypes[platform], strings.ToLower(path.Ext(name)))
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,99}$`)

// ValidName checks rule N1.
func ValidName(name string) *problem.Error {
	if !namePattern.MatchString(name) {
		return invalid("N1", "name", "name %q: use 1–99 characters, only A–Z a–z 0–9 _ - (convention: <product><version><platform><revision>, e.g. %s)", name, SuggestName("MyApp", "1.0", "linux", 1))
	}
	return nil
}

// ValidSoftwareVersion checks a software version: 1–100 printable
// characters, no control or invisible ones. It is the version title a
// catalog version must have for the group to be added to it (F1).
func ValidSoftwareVersion(v string) *problem.Error {
	bad := func() *problem.Error {
		return invalid("", "software_version", "software version %+q: use 1–100 printable characters, e.g. 2.0 (it must equal the catalog version's title, rule F1)", v)
	}
	if !utf8.ValidString(v) || v == "" || utf8.RuneCountInString(v) > 100 {
		return bad()
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return bad()
		}
	}
	return nil
}

// SuggestName builds a name by the convention of rule N3:
// <product><version><platform><revision>, keeping only allowed characters.
func SuggestName(product, version, platform string, revision int) string {
	keep := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r < 128 && (r == '_' || r == '-' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')) {
				return r
			}
			if r == '.' {
				return '_'
			}
			return -1
		}, s)
	}
	if platform != "" {
		platform = strings.ToUpper(platform[:1]) + platform[1:]
	}
	return keep(fmt.Sprintf("%s%s%s%d", product, version, platform, revision))
}

// Store keeps package groups.
type Store struct {
	db       *store.DB
	packages *packages.Store
	oses     *osversions.Store
	now      func() time.Time
}

// NewStore returns a group store.
func NewStore(db *store.DB, ps *packages.Store, oses *osversions.Store) *Store {
	return &Store{db: db, packages: ps, oses: oses, now: func() time.Time { return time.Now().UTC() }}
}

// Create validates spec for owner and stores the group. The name is
// claimed forever (N2) in the same transaction: of two concurrent creates
// with one name exactly one succeeds, the other gets a conflict.
func (s *Store) Create(ctx context.Context, owner string, spec Spec) (*Group, error) {
	g, err := s.validate(ctx, owner, spec)
	if err != nil {
		return nil, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO group_names (owner, name) VALUES ($1, $2)`, owner, g.Name); err != nil {
			if errors.Is(store.Classify(err), store.ErrConflict) {
				return &problem.Error{Code: problem.Conflict, Rule: "N2", Field: "name", Message: fmt.Sprintf("name %q was already used by this account; a package group name can be used only once, even after a failed build or deletion", g.Name)}
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO package_groups (id, owner, name, platform, installer_id, software_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			g.ID, owner, g.Name, g.Platform, g.InstallerID, g.SoftwareVersion, g.Created); err != nil {
			return err
		}
		for _, os := range g.OSVersions {
			if _, err := tx.ExecContext(ctx, `INSERT INTO group_os_versions (group_id, os_name) VALUES ($1, $2)`, g.ID, os); err != nil {
				return err
			}
		}
		for _, p := range g.Packages {
			if _, err := tx.ExecContext(ctx, `INSERT INTO group_packages (group_id, package_id) VALUES ($1, $2)`, g.ID, p.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (s *Store) validate(ctx context.Context, owner string, spec Spec) (*Group, error) {
	if err := ValidName(spec.Name); err != nil {
		return nil, err
	}
	if _, ok := InstallerTypes[spec.Platform]; !ok {
		return nil, invalid("P3", "platform", "platform %q: a package group targets exactly one platform, linux or windows", spec.Platform)
	}
	if err := ValidSoftwareVersion(spec.SoftwareVersion); spec.SoftwareVersion != "" && err != nil {
		return nil, err
	}
	if len(spec.OSVersions) == 0 {
		return nil, invalid("P4", "os_versions", "name at least one OS version to build on (pib os ls lists them)")
	}
	g := &Group{ID: newID(), Owner: owner, Name: spec.Name, Platform: spec.Platform, InstallerID: spec.InstallerID, SoftwareVersion: spec.SoftwareVersion, Created: s.now()}
	for _, name := range spec.OSVersions {
		if slices.Contains(g.OSVersions, name) {
			continue
		}
		v, err := s.oses.Get(ctx, name)
		if errors.Is(err, osversions.ErrNotFound) {
			return nil, invalid("P4", "os_versions", "OS version %q is not registered; pib os ls lists the supported ones", name)
		}
		if err != nil {
			return nil, err
		}
		if v.Platform != spec.Platform {
			return nil, invalid("P3", "os_versions", "OS version %q is %s but the group's platform is %s; a group targets one platform (make two groups to support both)", name, v.Platform, spec.Platform)
		}
		g.OSVersions = append(g.OSVersions, name)
	}
	if spec.InstallerID == "" {
		return nil, invalid("P1", "installer_id", "mark exactly one package as the installer")
	}
	ids := spec.PackageIDs
	if !slices.Contains(ids, spec.InstallerID) {
		ids = append([]string{spec.InstallerID}, ids...)
	}
	seenName := map[string]string{}
	for _, id := range ids {
		if slices.ContainsFunc(g.Packages, func(p *packages.Package) bool { return p.ID == id }) {
			continue
		}
		p, err := s.packages.Get(ctx, owner, id)
		if errors.Is(err, packages.ErrNotFound) {
			field := "package_ids"
			if id == spec.InstallerID {
				field = "installer_id"
			}
			return nil, invalid("P1", field, "package %q not found; upload it first (pib packages upload)", id)
		}
		if err != nil {
			return nil, err
		}
		// All packages land in one folder in the build: names must differ.
		if other, dup := seenName[p.Name]; dup {
			return nil, invalid("P5", "package_ids", "packages %s and %s are both named %q; they would overwrite each other in the build", other, p.ID, p.Name)
		}
		seenName[p.Name] = p.ID
		g.Packages = append(g.Packages, p)
	}
	inst := g.Installer()
	if !IsInstaller(spec.Platform, inst.Name) {
		return nil, invalid("P2", "installer_id", "installer %q: a %s installer must be one of %s", inst.Name, spec.Platform, strings.Join(InstallerTypes[spec.Platform], " "))
	}
	return g, nil
}

// Get returns owner's group by ID or name.
func (s *Store) Get(ctx context.Context, owner, ref string) (*Group, error) {
	g, err := s.scanGroup(s.db.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM package_groups WHERE owner = $1 AND (id = $2 OR name = $2)`, owner, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("package group not found: %q", ref)
	}
	if err != nil {
		return nil, err
	}
	return g, s.fill(ctx, g)
}

// ByID returns any account's group (for workers).
func (s *Store) ByID(ctx context.Context, id string) (*Group, error) {
	g, err := s.scanGroup(s.db.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM package_groups WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("package group not found: %q", id)
	}
	if err != nil {
		return nil, err
	}
	return g, s.fill(ctx, g)
}

// List returns owner's groups, newest first, without their packages.
func (s *Store) List(ctx context.Context, owner string) ([]*Group, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+groupColumns+` FROM package_groups WHERE owner = $1 ORDER BY created_at DESC, id`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Group{}
	for rows.Next() {
		g, err := s.scanGroup(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// ListPage returns at most limit of owner's groups, newest first, starting
// after cursor ("" for the first page), and the cursor of the next page
// ("" when there is none). Keyset pagination: a page costs the same
// however deep it is.
func (s *Store) ListPage(ctx context.Context, owner, cursor string, limit int) ([]*Group, string, error) {
	q := `SELECT ` + groupColumns + ` FROM package_groups WHERE owner = $1`
	args := []any{owner}
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (created_at < $2 OR (created_at = $2 AND id > $3))`
		args = append(args, at, id)
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC, id LIMIT %d`, limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out := []*Group{}
	for rows.Next() {
		g, err := s.scanGroup(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(last.Created.Format(time.RFC3339Nano) + "|" + last.ID))
	}
	return out, next, nil
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	at, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	return at.UTC(), id, nil
}

// MarkSubmitted records the submission time (the pipeline calls it in
// the transaction that queues the builds).
func MarkSubmitted(ctx context.Context, tx *sql.Tx, id string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE package_groups SET submitted_at = $2 WHERE id = $1`, id, at)
	return err
}

const groupColumns = `id, owner, name, platform, installer_id, software_version, created_at, submitted_at`

func (s *Store) scanGroup(row interface{ Scan(...any) error }) (*Group, error) {
	var g Group
	var submitted sql.NullTime
	if err := row.Scan(&g.ID, &g.Owner, &g.Name, &g.Platform, &g.InstallerID, &g.SoftwareVersion, &g.Created, &submitted); err != nil {
		return nil, err
	}
	g.Created = g.Created.UTC()
	if submitted.Valid {
		t := submitted.Time.UTC()
		g.Submitted = &t
	}
	return &g, nil
}

// fill loads a group's OS versions and packages.
func (s *Store) fill(ctx context.Context, g *Group) error {
	rows, err := s.db.QueryContext(ctx, `SELECT os_name FROM group_os_versions WHERE group_id = $1 ORDER BY os_name`, g.ID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		g.OSVersions = append(g.OSVersions, n)
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `SELECT package_id FROM group_packages WHERE group_id = $1 ORDER BY package_id`, g.ID)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		p, err := s.packages.Get(ctx, g.Owner, id)
		if err != nil {
			return err
		}
		g.Packages = append(g.Packages, p)
	}
	return nil
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "pg-" + hex.EncodeToString(b)
}
