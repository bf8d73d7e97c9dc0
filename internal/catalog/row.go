//go:build linux

package catalog

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
)

// Request is what a row asks for.
type Request string

// The requests: the load form's three (L1) and Publish's.
const (
	NewProduct     Request = "new product"            // F3
	NewVersion     Request = "new version"            // F2
	AddOption      Request = "add fulfillment option" // F1
	PublishVersion Request = "publish version"        // made by Publish, not by a load form
)

// The columns of a row, as RowInput.Cell and Row.Cells name them (and as
// Row's JSON does).
const (
	ColRequest           = "request"
	ColProductID         = "product_id"
	ColProductTitle      = "product_title"
	ColVersionTitle      = "version_title"
	ColReleaseNotes      = "release_notes"
	ColUsageInstructions = "usage_instructions"
	ColPackageGroup      = "package_group"
	ColPlatform          = "platform"
	ColShortDescription  = "short_description"
	ColLongDescription   = "long_description"
	ColHighlights        = "highlights"
	ColCategory          = "category"
	ColSupportContact    = "support_contact"
	ColEULAURL           = "eula_url"
	ColLogoURL           = "logo_url"
	ColTestAccounts      = "test_accounts"
)

var columns = []string{ColRequest, ColProductID, ColProductTitle, ColVersionTitle, ColReleaseNotes, ColUsageInstructions,
	ColPackageGroup, ColPlatform, ColShortDescription, ColLongDescription, ColHighlights, ColCategory, ColSupportContact,
	ColEULAURL, ColLogoURL, ColTestAccounts}

// Limits of the text columns, in characters (L1). The load form shows
// and checks the same.
const (
	MaxTitle            = 100 // product and version titles
	MaxShortDescription = 500
	MaxLongDescription  = 5000
	MaxHighlights       = 3
	MaxHighlight        = 250
	MaxReleaseNotes     = 5000
	MaxUsage            = 5000
	MaxSupportContact   = 500
	MaxURL              = 2048
	MaxTestAccounts     = 50
	MaxRows             = 1000
)

// Categories are the product categories a row may name.
var Categories = []string{
	"Business Applications", "Data & Analytics", "Databases", "Developer Tools", "Infrastructure Software",
	"Machine Learning", "Migration", "Networking", "Operating Systems", "Security", "Storage",
}

// Row is one requested change, as stored in a change request.
type Row struct {
	// Line is the row's line in the load form (0 when not from one).
	Line              int      `json:"line,omitempty"`
	Request           Request  `json:"request"`
	ProductID         string   `json:"product_id,omitempty"`
	ProductTitle      string   `json:"product_title,omitempty"`
	VersionTitle      string   `json:"version_title,omitempty"`
	ReleaseNotes      string   `json:"release_notes,omitempty"`
	UsageInstructions string   `json:"usage_instructions,omitempty"`
	PackageGroup      string   `json:"package_group,omitempty"`
	Platform          string   `json:"platform,omitempty"`
	ShortDescription  string   `json:"short_description,omitempty"`
	LongDescription   string   `json:"long_description,omitempty"`
	Highlights        []string `json:"highlights,omitempty"`
	Category          string   `json:"category,omitempty"`
	SupportContact    string   `json:"support_contact,omitempty"`
	EULAURL           string   `json:"eula_url,omitempty"`
	LogoURL           string   `json:"logo_url,omitempty"`
	// TestAccounts are buyer account names that may see what the row adds
	// while it is not public.
	TestAccounts []string `json:"test_accounts,omitempty"`
	// Cells maps a column (ColProductTitle…) to where the seller wrote it
	// ("Products!D7"), so that errors found at approval name it too.
	Cells map[string]string `json:"cells,omitempty"`
}

// RowInput is a row handed to Submit: the API converts each load form row
// to one.
type RowInput struct {
	Row
	// Cell names where column (ColProductTitle…) of this row is, e.g.
	// "Products!D7"; nil: errors name "rows[i].column".
	Cell func(column string) string
}

// cell is where column of r is, for an error.
func (r *Row) cell(column string) string {
	if c := r.Cells[column]; c != "" {
		return c
	}
	return column
}

// groupInfo is a package group as the rules need it, read before any
// transaction: the pipeline reads through its own connection.
type groupInfo struct {
	g      *groups.Group
	builds []*pipeline.Build
}

// lookupGroups reads each package group the rows name, for seller; a
// name missing from the map is not seller's.
func (s *Store) lookupGroups(ctx context.Context, seller string, rows []Row) (map[string]*groupInfo, error) {
	out := map[string]*groupInfo{}
	for _, r := range rows {
		ref := r.PackageGroup
		if ref == "" || out[ref] != nil {
			continue
		}
		g, err := s.cfg.Groups.Get(ctx, seller, ref)
		if errors.Is(err, problem.NotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read package group %q: %w", ref, err)
		}
		bs, err := s.cfg.Builds.Builds(ctx, seller, g.ID)
		if err != nil {
			return nil, fmt.Errorf("read the builds of package group %q: %w", ref, err)
		}
		out[ref] = &groupInfo{g: g, builds: bs}
	}
	return out, nil
}

// checker applies the rules to the rows of one request, in order, against
// the catalog (through q) and what the rows above add; it collects every
// problem.
type checker struct {
	ctx    context.Context
	q      querier
	seller string
	groups map[string]*groupInfo

	details   []problem.Detail
	conflicts int
	// What the rows checked so far add: product titles, versions
	// (product ID or "new:"+title, NUL, version title) and their platforms
	// (version key, NUL, platform).
	titles    map[string]bool
	versions  map[string]bool
	platforms map[string]bool
}

func newChecker(ctx context.Context, q querier, seller string, gs map[string]*groupInfo) *checker {
	return &checker{ctx: ctx, q: q, seller: seller, groups: gs, titles: map[string]bool{}, versions: map[string]bool{}, platforms: map[string]bool{}}
}

func (c *checker) invalid(r *Row, column, rule, format string, args ...any) {
	c.details = append(c.details, problem.Detail{Field: r.cell(column), Rule: rule, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) conflict(r *Row, column, rule, format string, args ...any) {
	c.invalid(r, column, rule, format, args...)
	c.conflicts++
}

// result is every problem found as one instance of base (nil if none),
// its message base's and then what to do: a conflict if every problem is
// one, else invalid. A single problem is also the error's own rule, field
// and message.
func (c *checker) result(base *problem.Error, todo string) *problem.Error {
	if len(c.details) == 0 {
		return nil
	}
	e := base.Errorf("%s: %d problem(s); %s", base.Message, len(c.details), todo)
	e.Code, e.Details = problem.Invalid, c.details
	if c.conflicts == len(c.details) {
		e.Code = problem.Conflict
	}
	if len(c.details) == 1 {
		d := c.details[0]
		e.Rule, e.Field, e.Message = d.Rule, d.Field, d.Message
	}
	return e
}

// check applies the rules to every row; the error is pib's, not the
// seller's (a failing database).
func (c *checker) check(rows []Row) error {
	for i := range rows {
		if err := c.row(&rows[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) row(r *Row) error {
	switch r.Request {
	case NewProduct:
		return c.newProduct(r)
	case NewVersion:
		return c.newVersion(r)
	case AddOption:
		return c.addOption(r)
	case PublishVersion:
		return c.publish(r)
	}
	c.invalid(r, ColRequest, "L1", "request %q: use one of %q, %q, %q", r.Request, NewProduct, NewVersion, AddOption)
	return nil
}

// F3: a new product with its first version and package group.
func (c *checker) newProduct(r *Row) error {
	if r.ProductID != "" {
		c.invalid(r, ColProductID, "L1", "a new product gets its ID on approval; leave the product ID empty (or use a new version row for an existing product)")
	}
	if c.line(r, ColProductTitle, r.ProductTitle, "product title", MaxTitle) {
		taken := c.titles[r.ProductTitle]
		if !taken {
			var one int
			err := c.q.QueryRowContext(c.ctx, `SELECT 1 FROM products WHERE owner = $1 AND title = $2`, c.seller, r.ProductTitle).Scan(&one)
			if err != nil && !errors.Is(err, errNoRows) {
				return err
			}
			taken = err == nil
		}
		if taken {
			c.conflict(r, ColProductTitle, "F3", "you already have a product titled %q; choose another title, or add a version to it with a new version row", r.ProductTitle)
		}
		c.titles[r.ProductTitle] = true
	}
	c.text(r, ColShortDescription, r.ShortDescription, "short description", MaxShortDescription)
	c.text(r, ColLongDescription, r.LongDescription, "long description", MaxLongDescription)
	if len(r.Highlights) > MaxHighlights {
		c.invalid(r, ColHighlights, "L1", "give at most %d highlights (this row has %d)", MaxHighlights, len(r.Highlights))
	}
	for _, h := range r.Highlights {
		c.line(r, ColHighlights, h, "each highlight", MaxHighlight)
	}
	if !slices.Contains(Categories, r.Category) {
		c.invalid(r, ColCategory, "L1", "category %q: use one of %s", r.Category, strings.Join(Categories, ", "))
	}
	c.text(r, ColSupportContact, r.SupportContact, "support contact", MaxSupportContact)
	c.url(r, ColEULAURL, r.EULAURL, "EULA URL")
	c.url(r, ColLogoURL, r.LogoURL, "logo URL")
	c.versionText(r)
	if err := c.group(r, "F3", "new:"+r.ProductTitle, false); err != nil {
		return err
	}
	return c.testAccounts(r)
}

// F2: a new version of one of the seller's products.
func (c *checker) newVersion(r *Row) error {
	c.productColumnsEmpty(r)
	ok, err := c.product(r, "F2")
	if err != nil {
		return err
	}
	c.versionText(r)
	if ok && r.VersionTitle != "" {
		key := r.ProductID + "\x00" + r.VersionTitle
		_, exists, err := c.version(r.ProductID, r.VersionTitle)
		if err != nil {
			return err
		}
		if exists || c.versions[key] {
			c.conflict(r, ColVersionTitle, "F2", "product %s already has a version %q; give the new version another title, or add a package group to that one with an add fulfillment option row", r.ProductID, r.VersionTitle)
		}
		c.versions[key] = true
	}
	if err := c.group(r, "F2", r.ProductID, false); err != nil {
		return err
	}
	return c.testAccounts(r)
}

// F1: a package group as a new fulfillment option of an existing version
// (or of one a row above adds).
func (c *checker) addOption(r *Row) error {
	c.productColumnsEmpty(r)
	for _, col := range []struct{ name, v string }{{ColReleaseNotes, r.ReleaseNotes}, {ColUsageInstructions, r.UsageInstructions}} {
		if col.v != "" {
			c.invalid(r, col.name, "L1", "an add fulfillment option row keeps the version's text; leave this column empty")
		}
	}
	ok, err := c.product(r, "F1")
	if err != nil {
		return err
	}
	stored := false
	if ok {
		if r.VersionTitle == "" {
			c.invalid(r, ColVersionTitle, "F1", "name the version to add the package group to (its version title)")
			ok = false
		} else {
			_, exists, err := c.version(r.ProductID, r.VersionTitle)
			if err != nil {
				return err
			}
			stored = exists
			if !exists && !c.versions[r.ProductID+"\x00"+r.VersionTitle] {
				c.invalid(r, ColVersionTitle, "F1", "product %s has no version %q; add it with a new version row (pib products show %s lists its versions)", r.ProductID, r.VersionTitle, r.ProductID)
				ok = false
			}
		}
	}
	if ok {
		if err := c.group(r, "F1", r.ProductID, stored); err != nil {
			return err
		}
	}
	return c.testAccounts(r)
}

// publish: a version, and its product if need be, becomes public.
func (c *checker) publish(r *Row) error {
	ok, err := c.product(r, "L2")
	if err != nil || !ok {
		return err
	}
	v, exists, err := c.version(r.ProductID, r.VersionTitle)
	if err != nil {
		return err
	}
	switch {
	case !exists:
		c.invalid(r, ColVersionTitle, "L2", "product %s has no version %q (pib products show %s lists its versions)", r.ProductID, r.VersionTitle, r.ProductID)
	case v.Visibility == Public:
		c.conflict(r, ColVersionTitle, "L2", "version %q of product %s is already public", r.VersionTitle, r.ProductID)
	}
	return nil
}

var productOnly = []string{ColProductTitle, ColShortDescription, ColLongDescription, ColHighlights, ColCategory, ColSupportContact, ColEULAURL, ColLogoURL}

// productColumnsEmpty refuses product columns on a row that does not make
// a product: a load form cannot edit one, and silently ignoring them would
// hide that.
func (c *checker) productColumnsEmpty(r *Row) {
	values := map[string]bool{ColProductTitle: r.ProductTitle != "", ColShortDescription: r.ShortDescription != "",
		ColLongDescription: r.LongDescription != "", ColHighlights: len(r.Highlights) > 0, ColCategory: r.Category != "",
		ColSupportContact: r.SupportContact != "", ColEULAURL: r.EULAURL != "", ColLogoURL: r.LogoURL != ""}
	for _, col := range productOnly {
		if values[col] {
			c.invalid(r, col, "L1", "only a new product row sets this column (a product cannot be edited by a load form); leave it empty")
		}
	}
}

// product checks that r names one of the seller's products; another
// seller's reads exactly like a missing one.
func (c *checker) product(r *Row, rule string) (bool, error) {
	if r.ProductID == "" {
		c.invalid(r, ColProductID, rule, "give the product ID (prod-…; pib products ls lists yours)")
		return false, nil
	}
	var one int
	err := c.q.QueryRowContext(c.ctx, `SELECT 1 FROM products WHERE id = $1 AND owner = $2`, r.ProductID, c.seller).Scan(&one)
	if errors.Is(err, errNoRows) {
		c.invalid(r, ColProductID, rule, "product %q not found in your account (pib products ls lists yours)", r.ProductID)
		return false, nil
	}
	return err == nil, err
}

// version reads version title of product (the seller's, checked before).
func (c *checker) version(product, title string) (*Version, bool, error) {
	var v Version
	err := c.q.QueryRowContext(c.ctx, `SELECT id, visibility FROM product_versions WHERE product_id = $1 AND title = $2`, product, title).Scan(&v.ID, &v.Visibility)
	if errors.Is(err, errNoRows) {
		return nil, false, nil
	}
	return &v, err == nil, err
}

func (c *checker) versionText(r *Row) {
	c.line(r, ColVersionTitle, r.VersionTitle, "version title", MaxTitle)
	c.text(r, ColReleaseNotes, r.ReleaseNotes, "release notes", MaxReleaseNotes)
	c.text(r, ColUsageInstructions, r.UsageInstructions, "usage instructions", MaxUsage)
}

// group applies the package group rules of F1–F3 to r's group for the
// version r names of product (an ID, or "new:"+title); stored says the
// version is in the catalog already.
func (c *checker) group(r *Row, rule, product string, stored bool) error {
	if r.PackageGroup == "" {
		c.invalid(r, ColPackageGroup, rule, "name the package group that fulfils this version (the Package groups sheet lists your Successful groups)")
		return nil
	}
	gi := c.groups[r.PackageGroup]
	if gi == nil {
		c.invalid(r, ColPackageGroup, rule, "package group %q not found in your account (the Package groups sheet lists your Successful groups)", r.PackageGroup)
		return nil
	}
	g := gi.g
	if r.Platform != "" && r.Platform != g.Platform {
		c.invalid(r, ColPlatform, rule, "platform %q: package group %s is a %s group; leave the platform empty or write %s", r.Platform, g.Name, g.Platform, g.Platform)
	}
	if r.VersionTitle != "" && g.SoftwareVersion != r.VersionTitle {
		c.invalid(r, ColPackageGroup, rule, "package group %s has software version %q, not %q: a group fulfils only the version its software version names (F1); create a group with software version %q", g.Name, g.SoftwareVersion, r.VersionTitle, r.VersionTitle)
	}
	var notDone []string
	for _, os := range g.OSVersions {
		i := slices.IndexFunc(gi.builds, func(b *pipeline.Build) bool { return b.OSName == os })
		switch {
		case i < 0:
			notDone = append(notDone, os+": not built")
		case gi.builds[i].State != pipeline.Successful:
			notDone = append(notDone, fmt.Sprintf("%s: %s", os, gi.builds[i].State))
		}
	}
	if len(notDone) > 0 {
		c.invalid(r, ColPackageGroup, rule, "package group %s is not Successful on every OS version it names (%s); fix it, submit it again (pib groups submit %s) and send the form once it is Successful", g.Name, strings.Join(notDone, ", "), g.Name)
	}
	if r.VersionTitle == "" {
		return nil
	}
	key := product + "\x00" + r.VersionTitle + "\x00" + g.Platform
	taken := c.platforms[key]
	if !taken && stored {
		var one int
		err := c.q.QueryRowContext(c.ctx, `SELECT 1 FROM fulfillment_options o JOIN product_versions v ON v.id = o.version_id
			WHERE v.product_id = $1 AND v.title = $2 AND o.kind = 'package_group' AND o.platform = $3`, product, r.VersionTitle, g.Platform).Scan(&one)
		if err != nil && !errors.Is(err, errNoRows) {
			return err
		}
		taken = err == nil
	}
	if taken {
		c.conflict(r, ColPackageGroup, rule, "version %q already has a %s package group; a version has at most one per platform, and an option is never replaced: release a new version instead", r.VersionTitle, g.Platform)
	}
	c.platforms[key] = true
	if r.Platform == "" {
		r.Platform = g.Platform
	}
	return nil
}

// testAccounts checks that each named account is a buyer.
func (c *checker) testAccounts(r *Row) error {
	if len(r.TestAccounts) > MaxTestAccounts {
		c.invalid(r, ColTestAccounts, "L1", "name at most %d test accounts", MaxTestAccounts)
		return nil
	}
	_, missing, err := buyerIDs(c.ctx, c.q, r.TestAccounts)
	if err != nil {
		return err
	}
	for _, name := range missing {
		c.invalid(r, ColTestAccounts, "L1", "test account %q is not a buyer account; name the buyer accounts that test-fulfil before the version is public", name)
	}
	return nil
}

// buyerIDs resolves buyer account names; missing are the names that are
// not buyers' (or not accounts at all: the message is the same).
func buyerIDs(ctx context.Context, q querier, names []string) (ids, missing []string, err error) {
	for _, name := range names {
		var id string
		err := q.QueryRowContext(ctx, `SELECT id FROM accounts WHERE name = $1 AND role = $2`, name, string(accounts.Buyer)).Scan(&id)
		if errors.Is(err, errNoRows) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, id)
	}
	return ids, missing, nil
}

// line checks a required one-line text column; it reports whether v is good.
func (c *checker) line(r *Row, column, v, what string, max int) bool {
	if !c.text(r, column, v, what, max) {
		return false
	}
	if strings.ContainsAny(v, "\r\n\t") {
		c.invalid(r, column, "L1", "%s must be one line", what)
		return false
	}
	return true
}

// text checks a required text column: 1 to max characters, no control
// characters but line breaks and tabs.
func (c *checker) text(r *Row, column, v, what string, max int) bool {
	n := utf8.RuneCountInString(v)
	switch {
	case strings.TrimSpace(v) == "":
		c.invalid(r, column, "L1", "%s is required (1–%d characters)", what, max)
	case n > max || !utf8.ValidString(v):
		c.invalid(r, column, "L1", "%s is %d characters long; shorten it to at most %d", what, n, max)
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }) >= 0:
		c.invalid(r, column, "L1", "%s contains control characters; remove them", what)
	default:
		return true
	}
	return false
}

// url checks an optional https URL.
func (c *checker) url(r *Row, column, v, what string) {
	if v == "" {
		return
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" || len(v) > MaxURL {
		c.invalid(r, column, "L1", "%s %q: give an https:// address of at most %d characters, or leave it empty", what, v, MaxURL)
	}
}
