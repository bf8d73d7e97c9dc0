//go:build linux

package privatebuilds

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// The reasons (problem.Reason) Create answers besides
// subscriptions.ReasonNotFound.
const (
	ReasonInstallerMismatch           problem.Reason = "InstallerMismatch"
	ReasonInvalidSourceImage          problem.Reason = "InvalidSourceImage"
	ReasonBuildLimitExceeded          problem.Reason = "BuildLimitExceeded"
	ReasonIdempotentParameterMismatch problem.Reason = "IdempotentParameterMismatch"
)

// Errors callers test with errors.Is (or by their Reason).
var (
	ErrNotFound          = problem.New(problem.NotFound, "private image build not found")
	ErrInstallerMismatch = &problem.Error{Code: problem.Invalid, Rule: "C2", Field: "gold_image", Reason: ReasonInstallerMismatch,
		Message: "the gold image does not match the package group's platform and OS versions"}
	ErrInvalidSourceImage = &problem.Error{Code: problem.Invalid, Rule: "C5", Field: "gold_image", Reason: ReasonInvalidSourceImage,
		Message: "the gold image already carries this fulfillment"}
	ErrBuildLimitExceeded = &problem.Error{Code: problem.Conflict, Rule: "C4", Reason: ReasonBuildLimitExceeded,
		Message: "too many private image builds in progress"}
	ErrIdempotentParameterMismatch = &problem.Error{Code: problem.Conflict, Rule: "C4", Field: "client_token", Reason: ReasonIdempotentParameterMismatch,
		Message: "the client token was used for a different request"}
)

// The tags pib gives a private image (C5). The caller's own tags may not
// start with TagPrefix.
const (
	TagPrefix      = "pib:"
	TagFulfillment = "pib:fulfillment"
	TagProduct     = "pib:product"
	TagVersion     = "pib:version"
	TagSourceImage = "pib:source-image"
	TagName        = "pib:name"
	TagDescription = "pib:description"
)

// Limits of a request.
const (
	MaxName        = 128
	MaxDescription = 1000
	MaxTags        = 50
	MaxTagKey      = 128
	MaxTagValue    = 256
	MaxClientToken = 64
	DefaultLimit   = 2
)

// Request is a private image build request (POST /v1/private-image-builds).
type Request struct {
	Product string `json:"product"` // product ID
	Version string `json:"version"` // version ID or title
	// Fulfillment is the fulfillment option's ID; empty: the version's
	// package group of the gold image's platform.
	Fulfillment string `json:"fulfillment,omitempty"`
	GoldImage   string `json:"gold_image"` // the caller's image, ID or alias
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Tags are the caller's own tags for the new image.
	Tags map[string]string `json:"tags,omitempty"`
	// ClientToken makes the request idempotent (C4).
	ClientToken string `json:"client_token,omitempty"`
}

// PrivateBuild is a private image build: the request, resolved, and its
// pipeline build (whose ID it shares).
type PrivateBuild struct {
	ID            string            `json:"id"`
	ProductID     string            `json:"product_id"`
	VersionID     string            `json:"version_id"`
	FulfillmentID string            `json:"fulfillment_id"`
	GoldImageID   string            `json:"gold_image_id"`
	Name          string            `json:"name"`
	Description   string            `json:"description,omitempty"`
	Tags          map[string]string `json:"tags"`
	ClientToken   string            `json:"client_token,omitempty"`
	Created       time.Time         `json:"created"`
	// Build is the pipeline build: state, image (once made),
	// troubleshooting, findings and times.
	Build *pipeline.Build `json:"build"`
}

// Catalog finds the products a viewer may see (*catalog.Store).
type Catalog interface {
	Get(ctx context.Context, viewer *accounts.Account, id string) (*catalog.Product, error)
}

// Subscriptions checks subscriptions (*subscriptions.Store).
type Subscriptions interface {
	// Check returns nil when account subscribes to product id, else
	// subscriptions.ErrNotSubscribed.
	Check(ctx context.Context, account *accounts.Account, id string) error
}

// Images finds images (*images.Store).
type Images interface {
	GetOwned(ctx context.Context, owner, ref string) (*images.Image, error)
	Get(ctx context.Context, ref string) (*images.Image, error)
	Carries(ctx context.Context, id, key, value string) (bool, error)
}

// Groups finds package groups by ID (*groups.Store).
type Groups interface {
	ByID(ctx context.Context, id string) (*groups.Group, error)
}

// OSVersions resolves OS versions (*osversions.Store).
type OSVersions interface {
	Get(ctx context.Context, name string) (*osversions.OSVersion, error)
}

// Submitter queues the build (*pipeline.Pipeline).
type Submitter interface {
	SubmitPrivate(ctx context.Context, tx *sql.Tx, s pipeline.PrivateSubmission) (*pipeline.Build, error)
}

// Config is what a Service depends on.
type Config struct {
	Catalog       Catalog
	Subscriptions Subscriptions
	Images        Images
	Groups        Groups
	OSVersions    OSVersions
	Pipeline      Submitter
	Builds        *pipeline.Reader
	// Limit is how many private builds an account may have in progress at
	// once (C4); 0: DefaultLimit.
	Limit int
	Now   func() time.Time
}

// Service runs private image builds.
type Service struct {
	db  *store.DB
	cfg Config
}

// New returns the service over db.
func New(db *store.DB, cfg Config) *Service {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{db: db, cfg: cfg}
}

// Create checks req (see the package documentation) and queues its build,
// or returns the build an earlier request with the same client token made
// (created false).
func (s *Service) Create(ctx context.Context, a *accounts.Account, req Request) (pb *PrivateBuild, created bool, err error) {
	if err := validate(&req); err != nil {
		return nil, false, err
	}
	raw, _ := json.Marshal(req)
	if req.ClientToken != "" {
		if pb, err := s.byToken(ctx, a, req.ClientToken, raw); pb != nil || err != nil {
			return pb, false, err
		}
	}
	plan, err := s.check(ctx, a, req)
	if err != nil {
		return nil, false, err
	}
	now := s.cfg.Now().UTC()
	var id string
	var made *pipeline.Build
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		// Lock the account (PostgreSQL; SQLite's transaction holds the
		// write lock): its requests take turns to count and to claim a
		// token.
		lock := `SELECT id FROM accounts WHERE id = $1`
		if s.db.Dialect == store.Postgres {
			lock += ` FOR UPDATE`
		}
		if err := tx.QueryRowContext(ctx, lock, a.ID).Scan(&id); err != nil {
			return err
		}
		id = ""
		if req.ClientToken != "" {
			var existing string
			err := tx.QueryRowContext(ctx, `SELECT build_id FROM private_builds WHERE account_id = $1 AND client_token = $2`, a.ID, req.ClientToken).Scan(&existing)
			if err == nil {
				return errRetry
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		n, err := pipeline.Running(ctx, tx, a.ID)
		if err != nil {
			return err
		}
		if n >= s.cfg.Limit {
			return ErrBuildLimitExceeded.Errorf("too many private image builds in progress: %d of at most %d; wait for one to end (pib private-images ls)", n, s.cfg.Limit)
		}
		b, err := s.cfg.Pipeline.SubmitPrivate(ctx, tx, plan.submission)
		if err != nil {
			return err
		}
		tags, _ := json.Marshal(nonNil(req.Tags))
		if _, err := tx.ExecContext(ctx, `INSERT INTO private_builds (build_id, account_id, product_id, version_id, option_id, gold_image,
			name, description, tags, client_token, request, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			b.ID, a.ID, plan.product, plan.version, plan.option, plan.submission.ImageID, req.Name, req.Description, string(tags),
			req.ClientToken, string(raw), now); err != nil {
			return store.Classify(err)
		}
		id, made = b.ID, b
		return nil
	})
	if req.ClientToken != "" && (errors.Is(err, errRetry) || errors.Is(err, store.ErrConflict)) {
		// Another request with this token won the race.
		pb, err := s.byToken(ctx, a, req.ClientToken, raw)
		if pb == nil && err == nil {
			err = fmt.Errorf("client token %q: claimed but not found", req.ClientToken)
		}
		return pb, false, err
	}
	if err != nil {
		return nil, false, err
	}
	// The build as submitted: a worker may have claimed it already, and
	// the answer to a request is its state at the time of the request.
	return &PrivateBuild{ID: id, ProductID: plan.product, VersionID: plan.version, FulfillmentID: plan.option, GoldImageID: plan.submission.ImageID,
		Name: req.Name, Description: req.Description, Tags: nonNil(req.Tags), ClientToken: req.ClientToken, Created: now, Build: made}, true, nil
}

var errRetry = errors.New("the client token is taken")

// byToken returns a's build of client token, nil if none; one requested
// with other parameters than raw is ErrIdempotentParameterMismatch.
func (s *Service) byToken(ctx context.Context, a *accounts.Account, token string, raw []byte) (*PrivateBuild, error) {
	var id, was string
	err := s.db.QueryRowContext(ctx, `SELECT build_id, request FROM private_builds WHERE account_id = $1 AND client_token = $2`, a.ID, token).Scan(&id, &was)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if was != string(raw) {
		return nil, ErrIdempotentParameterMismatch.Errorf("client token %q was used for a different request (build %s); use a new token for new parameters, or repeat that request exactly", token, id)
	}
	return s.Get(ctx, a, id)
}

// plan is a checked request.
type plan struct {
	product, version, option string
	submission               pipeline.PrivateSubmission
}

// check runs the checks of a request before anything is written.
func (s *Service) check(ctx context.Context, a *accounts.Account, req Request) (*plan, error) {
	p, err := s.cfg.Catalog.Get(ctx, a, req.Product)
	if err != nil {
		return nil, err
	}
	// F2: a seller test-fulfils its own product without subscribing.
	if p.Seller != a.ID {
		if err := s.cfg.Subscriptions.Check(ctx, a, p.ID); err != nil {
			return nil, err
		}
	}
	i := slices.IndexFunc(p.Versions, func(v *catalog.Version) bool { return v.ID == req.Version || v.Title == req.Version })
	if i < 0 {
		return nil, &problem.Error{Code: problem.NotFound, Field: "version", Message: fmt.Sprintf("product %s has no version %q (pib products show %s lists its versions)", p.ID, req.Version, p.ID)}
	}
	v := p.Versions[i]
	gold, err := s.cfg.Images.GetOwned(ctx, a.ID, req.GoldImage)
	if errors.Is(err, images.ErrNotFound) {
		// Another account's image reads exactly like a missing one.
		return nil, &problem.Error{Code: problem.NotFound, Field: "gold_image", Err: err,
			Message: fmt.Sprintf("image not found: %q (pib image ls lists your images)", req.GoldImage)}
	}
	if err != nil {
		return nil, err
	}
	var opt *catalog.Option
	if req.Fulfillment != "" {
		i := slices.IndexFunc(v.Options, func(o *catalog.Option) bool { return o.ID == req.Fulfillment })
		if i < 0 {
			return nil, &problem.Error{Code: problem.NotFound, Field: "fulfillment", Message: fmt.Sprintf("version %s of product %s has no fulfillment option %q", v.Title, p.ID, req.Fulfillment)}
		}
		opt = v.Options[i]
		if opt.Kind != catalog.PackageGroup {
			return nil, &problem.Error{Code: problem.Invalid, Rule: "C1", Field: "fulfillment", Message: fmt.Sprintf("fulfillment option %s is an image, not a package group: there is nothing to install", opt.ID)}
		}
	} else {
		var platforms []string
		for _, o := range v.Options {
			if o.Kind == catalog.PackageGroup && o.Platform == gold.OS {
				opt = o
			}
			if o.Kind == catalog.PackageGroup {
				platforms = append(platforms, o.Platform)
			}
		}
		if opt == nil {
			return nil, ErrInstallerMismatch.Errorf("gold image %s is %s, and version %s of product %s has no package group for %s (it has: %s); choose a gold image of a platform it supports",
				gold.ID, gold.OS, v.Title, p.ID, gold.OS, dashIfNone(platforms))
		}
	}
	g, err := s.cfg.Groups.ByID(ctx, opt.GroupID)
	if err != nil {
		return nil, fmt.Errorf("package group %s of option %s: %w", opt.GroupID, opt.ID, err)
	}
	osName, err := s.match(ctx, g, gold)
	if err != nil {
		return nil, err
	}
	carries, err := s.cfg.Images.Carries(ctx, gold.ID, TagFulfillment, opt.ID)
	if err != nil {
		return nil, err
	}
	if carries {
		return nil, ErrInvalidSourceImage.Errorf("gold image %s already carries fulfillment %s (version %s of product %s): install it onto an image that does not have it", gold.ID, opt.ID, v.Title, p.ID)
	}
	tags := map[string]string{}
	for k, val := range req.Tags {
		tags[k] = val
	}
	tags[TagFulfillment], tags[TagProduct], tags[TagVersion], tags[TagSourceImage], tags[TagName] = opt.ID, p.ID, v.ID, gold.ID, req.Name
	if req.Description != "" {
		tags[TagDescription] = req.Description
	}
	return &plan{product: p.ID, version: v.ID, option: opt.ID, submission: pipeline.PrivateSubmission{
		Owner: a.ID, GroupID: g.ID, GroupName: g.Name, OSName: osName, ImageID: gold.ID, Tags: tags}}, nil
}

// match returns the OS version of g that gold is (C2): the same platform,
// and the distribution and version of its base image.
func (s *Service) match(ctx context.Context, g *groups.Group, gold *images.Image) (string, error) {
	if gold.OS != g.Platform {
		return "", ErrInstallerMismatch.Errorf("gold image %s is %s, and package group %s installs on %s; choose a %s gold image or the version's %s fulfillment option",
			gold.ID, gold.OS, g.Name, g.Platform, g.Platform, gold.OS)
	}
	for _, name := range g.OSVersions {
		v, err := s.cfg.OSVersions.Get(ctx, name)
		if errors.Is(err, problem.NotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		base, err := s.cfg.Images.Get(ctx, v.ImageID)
		if errors.Is(err, problem.NotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if base.DistroID == gold.DistroID && base.DistroVersion == gold.DistroVersion {
			return name, nil
		}
	}
	return "", ErrInstallerMismatch.Errorf("gold image %s is %s %s, and package group %s supports only %s; choose a gold image of one of those",
		gold.ID, cmpOr(gold.DistroID, "an unknown distribution"), gold.DistroVersion, g.Name, strings.Join(g.OSVersions, ", "))
}

func validate(req *Request) error {
	invalid := func(field, format string, args ...any) error {
		return &problem.Error{Code: problem.Invalid, Rule: "C1", Field: field, Message: fmt.Sprintf(format, args...)}
	}
	for _, f := range []struct{ name, v string }{{"product", req.Product}, {"version", req.Version}, {"gold_image", req.GoldImage}, {"name", req.Name}} {
		if strings.TrimSpace(f.v) == "" {
			return invalid(f.name, "%s is required", f.name)
		}
	}
	if !text(req.Name, MaxName, false) {
		return invalid("name", "use 1–%d characters without control characters for the image name", MaxName)
	}
	if !text(req.Description, MaxDescription, true) {
		return invalid("description", "use at most %d characters for the description (line breaks allowed, no other control characters)", MaxDescription)
	}
	if len(req.Tags) > MaxTags {
		return invalid("tags", "at most %d tags", MaxTags)
	}
	for k, v := range req.Tags {
		if k == "" || !text(k, MaxTagKey, false) {
			return invalid("tags", "tag key %q: use 1–%d characters without control characters", k, MaxTagKey)
		}
		if strings.HasPrefix(k, TagPrefix) {
			return invalid("tags", "tag key %q: keys starting with %q are pib's own (C5)", k, TagPrefix)
		}
		if !text(v, MaxTagValue, false) {
			return invalid("tags", "tag %q: use at most %d characters without control characters for the value", k, MaxTagValue)
		}
	}
	if len(req.ClientToken) > MaxClientToken || !text(req.ClientToken, MaxClientToken, false) {
		return invalid("client_token", "use at most %d characters without control characters for the client token", MaxClientToken)
	}
	return nil
}

// text reports whether s is valid UTF-8 of at most max characters without
// control characters (newlines and tabs allowed when multiline).
func text(s string, max int, multiline bool) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			return false
		}
	}
	return true
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func dashIfNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const columns = `build_id, product_id, version_id, option_id, gold_image, name, description, tags, client_token, created_at`

func scan(row interface{ Scan(...any) error }) (*PrivateBuild, error) {
	var pb PrivateBuild
	var tags string
	if err := row.Scan(&pb.ID, &pb.ProductID, &pb.VersionID, &pb.FulfillmentID, &pb.GoldImageID, &pb.Name, &pb.Description, &tags, &pb.ClientToken, &pb.Created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(tags), &pb.Tags); err != nil {
		return nil, fmt.Errorf("private build %s: tags: %w", pb.ID, err)
	}
	pb.Created = pb.Created.UTC()
	return &pb, nil
}

// Get returns a's private build id; another account's is ErrNotFound.
func (s *Service) Get(ctx context.Context, a *accounts.Account, id string) (*PrivateBuild, error) {
	pb, err := scan(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM private_builds WHERE build_id = $1 AND account_id = $2`, id, a.ID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("private image build not found: %q (pib private-images ls lists yours)", id)
	}
	if err != nil {
		return nil, err
	}
	if pb.Build, err = s.cfg.Builds.Build(ctx, a.ID, id); err != nil {
		return nil, err
	}
	return pb, nil
}

// List returns a's private builds, newest first.
func (s *Service) List(ctx context.Context, a *accounts.Account) ([]*PrivateBuild, error) {
	builds, err := s.cfg.Builds.PrivateBuilds(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	byID := map[string]*pipeline.Build{}
	for _, b := range builds {
		byID[b.ID] = b
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM private_builds WHERE account_id = $1 ORDER BY created_at DESC, build_id DESC`, a.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*PrivateBuild{}
	for rows.Next() {
		pb, err := scan(rows)
		if err != nil {
			return nil, err
		}
		pb.Build = byID[pb.ID]
		out = append(out, pb)
	}
	return out, rows.Err()
}

// Log copies the build log (I8) of a's private build id to w.
func (s *Service) Log(ctx context.Context, a *accounts.Account, id string, w io.Writer) error {
	if _, err := s.Get(ctx, a, id); err != nil {
		return err
	}
	log, err := s.cfg.Builds.Log(ctx, a.ID, id)
	if err != nil {
		return err
	}
	_, err = w.Write(log)
	return err
}

// Report returns the report of a's private build id.
func (s *Service) Report(ctx context.Context, a *accounts.Account, id string) (*pipeline.Report, error) {
	if _, err := s.Get(ctx, a, id); err != nil {
		return nil, err
	}
	return s.cfg.Builds.Report(ctx, a.ID, id)
}

// History returns the state changes of a's private build id, oldest first.
func (s *Service) History(ctx context.Context, a *accounts.Account, id string) ([]pipeline.Event, error) {
	if _, err := s.Get(ctx, a, id); err != nil {
		return nil, err
	}
	return s.cfg.Builds.BuildHistory(ctx, a.ID, id)
}
