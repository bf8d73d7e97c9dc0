//go:build linux

package catalog

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// Visibility says who may see a product or a version.
type Visibility string

// The visibilities (SPEC, catalog visibility).
const (
	Draft   Visibility = "draft"   // the seller only
	Limited Visibility = "limited" // the seller and the accounts it names
	Public  Visibility = "public"  // everyone
)

// Product is a product with the versions the viewer may see.
type Product struct {
	ID               string     `json:"id"`
	Seller           string     `json:"seller"`
	Title            string     `json:"title"`
	ShortDescription string     `json:"short_description"`
	LongDescription  string     `json:"long_description"`
	Highlights       []string   `json:"highlights"`
	Category         string     `json:"category"`
	SupportContact   string     `json:"support_contact"`
	EULAURL          string     `json:"eula_url,omitempty"`
	LogoURL          string     `json:"logo_url,omitempty"`
	Visibility       Visibility `json:"visibility"`
	// TestAccounts names the accounts that may see the product while it is
	// limited; filled for its seller and operators only.
	TestAccounts []string   `json:"test_accounts,omitempty"`
	Created      time.Time  `json:"created"`
	Updated      time.Time  `json:"updated"`
	Versions     []*Version `json:"versions"`
}

// Version is one version of a product.
type Version struct {
	ID                string     `json:"id"`
	ProductID         string     `json:"product_id"`
	Title             string     `json:"title"`
	ReleaseNotes      string     `json:"release_notes"`
	UsageInstructions string     `json:"usage_instructions"`
	Visibility        Visibility `json:"visibility"`
	// TestAccounts: as Product.TestAccounts.
	TestAccounts []string  `json:"test_accounts,omitempty"`
	Created      time.Time `json:"created"`
	Options      []*Option `json:"fulfillment_options"`
}

// OptionKind is what a fulfillment option delivers.
type OptionKind string

// The fulfillment option kinds.
const (
	PackageGroup OptionKind = "package_group"
	Image        OptionKind = "image"
)

// Option is one fulfillment option of a version: a package group (one per
// platform) or an image.
type Option struct {
	ID        string     `json:"id"`
	Kind      OptionKind `json:"kind"`
	GroupID   string     `json:"group_id,omitempty"`
	GroupName string     `json:"group_name,omitempty"`
	Platform  string     `json:"platform,omitempty"`
	ImageID   string     `json:"image_id,omitempty"`
}

// Errors callers test with errors.Is.
var (
	// ErrNotFound is a product that does not exist or that the viewer may
	// not see: the two are indistinguishable.
	ErrNotFound = problem.New(problem.NotFound, "product not found")
	// ErrChangeNotFound is a change request that does not exist or is
	// another seller's.
	ErrChangeNotFound = problem.New(problem.NotFound, "change request not found")
	// ErrDecided is a decision on a change request already approved or
	// rejected.
	ErrDecided = &problem.Error{Code: problem.Conflict, Rule: "L2", Message: "change request already decided"}
	// ErrStale is an approval of a request the catalog has overtaken since
	// it was submitted; its Details say what no longer holds.
	ErrStale = &problem.Error{Code: problem.Conflict, Rule: "L2", Message: "the catalog changed since this request was submitted"}
	// ErrForbidden is a decision or a submission by the wrong role.
	ErrForbidden = problem.New(problem.Forbidden, "this role may not do that")
)

// Groups finds a seller's package groups (*groups.Store).
type Groups interface {
	// Get returns owner's group by ID or name, or groups.ErrNotFound.
	Get(ctx context.Context, owner, ref string) (*groups.Group, error)
}

// Builds reads the pipeline (*pipeline.Reader).
type Builds interface {
	// Builds returns the builds of the latest submission of owner's group
	// ref, none for a group never submitted.
	Builds(ctx context.Context, owner, ref string) ([]*pipeline.Build, error)
}

// Config is what a Store depends on.
type Config struct {
	Groups Groups
	Builds Builds
	// Decided, if set, runs inside the transaction that records a decision
	// (e.g. to queue the seller's webhook delivery); an error undoes the
	// decision.
	Decided func(ctx context.Context, tx *sql.Tx, d *Decision) error
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Store is the catalog and its change requests.
type Store struct {
	db  *store.DB
	cfg Config
}

// New returns the catalog of db.
func New(db *store.DB, cfg Config) *Store {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{db: db, cfg: cfg}
}

func (s *Store) now() time.Time { return s.cfg.Now().UTC() }

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// visibleTo is the condition every viewer's read of products (alias p) and
// versions (alias v) goes through: operators see all; anyone else sees
// what is public, what it owns, and what is limited to it. It appends the
// viewer's ID to args when it needs it.
func visibleTo(alias string, viewer *accounts.Account, args *[]any) string {
	if viewer.Role == accounts.Operator {
		return "1 = 1"
	}
	*args = append(*args, viewer.ID)
	return fmt.Sprintf(`(%[1]s.visibility = 'public' OR %[1]s.owner = $%[2]d OR (%[1]s.visibility = 'limited'
		AND EXISTS (SELECT 1 FROM catalog_grants cg WHERE cg.object_id = %[1]s.id AND cg.account_id = $%[2]d)))`, alias, len(*args))
}

// List returns the products viewer may see, by title, each with the
// versions viewer may see.
func (s *Store) List(ctx context.Context, viewer *accounts.Account) ([]*Product, error) {
	return s.products(ctx, viewer, "")
}

// Get returns product id if viewer may see it, with the versions viewer
// may see; otherwise ErrNotFound, as for an ID that does not exist.
func (s *Store) Get(ctx context.Context, viewer *accounts.Account, id string) (*Product, error) {
	ps, err := s.products(ctx, viewer, id)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, ErrNotFound.Errorf("product not found: %q (pib products ls lists the products you can see)", id)
	}
	return ps[0], nil
}

const productColumns = `p.id, p.owner, p.title, p.short_description, p.long_description, p.highlights, p.category,
	p.support_contact, p.eula_url, p.logo_url, p.visibility, p.created_at, p.updated_at`

// products reads the products viewer may see (only id, if not ""), their
// visible versions and those versions' options.
func (s *Store) products(ctx context.Context, viewer *accounts.Account, id string) ([]*Product, error) {
	var args []any
	where := visibleTo("p", viewer, &args)
	if id != "" {
		args = append(args, id)
		where += fmt.Sprintf(" AND p.id = $%d", len(args))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+productColumns+` FROM products p WHERE `+where+` ORDER BY p.title, p.id`, args...)
	if err != nil {
		return nil, err
	}
	out := []*Product{}
	byID := map[string]*Product{}
	for rows.Next() {
		var p Product
		var highlights string
		if err := rows.Scan(&p.ID, &p.Seller, &p.Title, &p.ShortDescription, &p.LongDescription, &highlights, &p.Category,
			&p.SupportContact, &p.EULAURL, &p.LogoURL, &p.Visibility, &p.Created, &p.Updated); err != nil {
			rows.Close()
			return nil, err
		}
		if err := json.Unmarshal([]byte(highlights), &p.Highlights); err != nil {
			rows.Close()
			return nil, fmt.Errorf("product %s: highlights: %w", p.ID, err)
		}
		p.Created, p.Updated, p.Versions = p.Created.UTC(), p.Updated.UTC(), []*Version{}
		out = append(out, &p)
		byID[p.ID] = &p
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}

	// Versions: the product's condition and the version's own.
	var vargs []any
	vwhere := visibleTo("p", viewer, &vargs) + " AND " + visibleTo("v", viewer, &vargs)
	if id != "" {
		vargs = append(vargs, id)
		vwhere += fmt.Sprintf(" AND p.id = $%d", len(vargs))
	}
	rows, err = s.db.QueryContext(ctx, `SELECT v.id, v.product_id, v.title, v.release_notes, v.usage_instructions, v.visibility, v.created_at
		FROM product_versions v JOIN products p ON p.id = v.product_id WHERE `+vwhere+` ORDER BY v.created_at, v.id`, vargs...)
	if err != nil {
		return nil, err
	}
	versions := map[string]*Version{}
	for rows.Next() {
		var v Version
		if err := rows.Scan(&v.ID, &v.ProductID, &v.Title, &v.ReleaseNotes, &v.UsageInstructions, &v.Visibility, &v.Created); err != nil {
			rows.Close()
			return nil, err
		}
		v.Created, v.Options = v.Created.UTC(), []*Option{}
		if p := byID[v.ProductID]; p != nil {
			p.Versions = append(p.Versions, &v)
			versions[v.ID] = &v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := s.fillOptions(ctx, versions); err != nil {
		return nil, err
	}
	return out, s.fillTestAccounts(ctx, viewer, byID, versions)
}

// fillOptions adds their options to versions (all visible already).
func (s *Store) fillOptions(ctx context.Context, versions map[string]*Version) error {
	if len(versions) == 0 {
		return nil
	}
	ids, args := placeholders(versions, 0)
	rows, err := s.db.QueryContext(ctx, `SELECT o.id, o.version_id, o.kind, COALESCE(o.group_id, ''), COALESCE(g.name, ''), o.platform, o.image_id
		FROM fulfillment_options o LEFT JOIN package_groups g ON g.id = o.group_id
		WHERE o.version_id IN (`+ids+`) ORDER BY o.kind, o.platform, o.id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var o Option
		var version string
		if err := rows.Scan(&o.ID, &version, &o.Kind, &o.GroupID, &o.GroupName, &o.Platform, &o.ImageID); err != nil {
			return err
		}
		versions[version].Options = append(versions[version].Options, &o)
	}
	return rows.Err()
}

// fillTestAccounts shows the grants of the products and versions viewer
// owns, or of all for an operator; nobody else learns who tests what.
func (s *Store) fillTestAccounts(ctx context.Context, viewer *accounts.Account, products map[string]*Product, versions map[string]*Version) error {
	mine := map[string]*[]string{}
	for _, p := range products {
		if viewer.Role == accounts.Operator || p.Seller == viewer.ID {
			mine[p.ID] = &p.TestAccounts
			for _, v := range p.Versions {
				mine[v.ID] = &v.TestAccounts
			}
		}
	}
	if len(mine) == 0 {
		return nil
	}
	ids, args := placeholders(mine, 0)
	rows, err := s.db.QueryContext(ctx, `SELECT cg.object_id, a.name FROM catalog_grants cg JOIN accounts a ON a.id = cg.account_id
		WHERE cg.object_id IN (`+ids+`) ORDER BY a.name`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var object, name string
		if err := rows.Scan(&object, &name); err != nil {
			return err
		}
		*mine[object] = append(*mine[object], name)
	}
	return rows.Err()
}

// placeholders returns "$n+1, $n+2, …" for the keys of m and the keys.
func placeholders[T any](m map[string]T, n int) (string, []any) {
	marks := make([]string, 0, len(m))
	args := make([]any, 0, len(m))
	for k := range m {
		args = append(args, k)
		marks = append(marks, fmt.Sprintf("$%d", n+len(args)))
	}
	return strings.Join(marks, ", "), args
}
