//go:build linux

package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

var (
	errNoRows  = sql.ErrNoRows
	errRefused = problem.New(problem.Invalid, "the change request was refused")
)

// State is a change request's state (L2).
type State string

// The change request states.
const (
	Pending  State = "pending"
	Approved State = "approved"
	Rejected State = "rejected"
)

// Change is a change request: rows a seller submitted, applied together
// once an operator approves them.
type Change struct {
	ID        string     `json:"id"`
	Seller    string     `json:"seller"`
	State     State      `json:"state"`
	Rows      []Row      `json:"rows"`
	Created   time.Time  `json:"created"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"`
	// Reason is the operator's, for a rejection.
	Reason string `json:"reason,omitempty"`
}

// The webhook events of a decision (Decision.Event).
const (
	EventApproved = "change.approved"
	EventRejected = "change.rejected"
)

// Decision is what an approval or a rejection did: enough for the API to
// send the seller's webhook event and write its audit row.
type Decision struct {
	// Event is EventApproved or EventRejected.
	Event string `json:"event"`
	// Change is the request after the decision; Change.Seller is the
	// account to notify.
	Change *Change `json:"change"`
	// Applied is, for an approval, what it changed (Diff's lines).
	Applied []string `json:"applied,omitempty"`
	// Products are the IDs of the products an approval created or changed.
	Products []string `json:"products,omitempty"`
}

// MaxReason is the longest rejection reason, in characters.
const MaxReason = 2000

// Submit checks rows from seller against the catalog and the rules and
// stores them as one pending change request. It returns every problem at
// once, each with its cell and rule, as one *problem.Error with Details;
// then nothing is stored.
func (s *Store) Submit(ctx context.Context, seller *accounts.Account, in []RowInput) (*Change, error) {
	if seller.Role != accounts.Seller {
		return nil, ErrForbidden.Errorf("only a seller submits catalog changes")
	}
	if len(in) == 0 {
		return nil, &problem.Error{Code: problem.Invalid, Rule: "L1", Message: "the load form has no rows; fill at least one row of the Products sheet"}
	}
	if len(in) > MaxRows {
		return nil, &problem.Error{Code: problem.Invalid, Rule: "L1", Message: fmt.Sprintf("the load form has %d rows; send at most %d per form", len(in), MaxRows)}
	}
	rows := make([]Row, len(in))
	for i, ri := range in {
		rows[i] = ri.Row
		rows[i].Cells = map[string]string{}
		for _, col := range columns {
			if ri.Cell != nil {
				rows[i].Cells[col] = ri.Cell(col)
			} else {
				rows[i].Cells[col] = fmt.Sprintf("rows[%d].%s", i, col)
			}
		}
	}
	gs, err := s.lookupGroups(ctx, seller.ID, rows)
	if err != nil {
		return nil, err
	}
	c := newChecker(ctx, s.db, seller.ID, gs)
	if err := c.check(rows); err != nil {
		return nil, fmt.Errorf("check the change request: %w", err)
	}
	if e := c.result(errRefused, "fix each cell listed and submit the whole form again (nothing was stored)"); e != nil {
		return nil, e
	}
	raw, err := json.Marshal(rows)
	if err != nil {
		return nil, err
	}
	ch := &Change{ID: newID("chg-"), Seller: seller.ID, State: Pending, Rows: rows, Created: s.now()}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO change_requests (id, seller, state, rows_json, created_at) VALUES ($1, $2, $3, $4, $5)`,
		ch.ID, ch.Seller, string(ch.State), string(raw), ch.Created); err != nil {
		return nil, fmt.Errorf("store the change request: %w", err)
	}
	return ch, nil
}

// Publish asks for version (an ID or a title) of seller's product to
// become public, and the product with it: a change request an operator
// approves like any other.
func (s *Store) Publish(ctx context.Context, seller *accounts.Account, productID, version string) (*Change, error) {
	var title string
	err := s.db.QueryRowContext(ctx, `SELECT v.title FROM product_versions v JOIN products p ON p.id = v.product_id
		WHERE p.id = $1 AND p.owner = $2 AND (v.id = $3 OR v.title = $3)`, productID, seller.ID, version).Scan(&title)
	if errors.Is(err, errNoRows) {
		return nil, ErrNotFound.Errorf("product not found: %q with a version %q (pib products ls lists yours)", productID, version)
	}
	if err != nil {
		return nil, err
	}
	return s.Submit(ctx, seller, []RowInput{{Row: Row{Request: PublishVersion, ProductID: productID, VersionTitle: title}}})
}

// Changes lists the change requests viewer may see, newest first: a
// seller its own, an operator all.
func (s *Store) Changes(ctx context.Context, viewer *accounts.Account) ([]*Change, error) {
	q, args := `SELECT `+changeColumns+` FROM change_requests`, []any{}
	if viewer.Role != accounts.Operator {
		q, args = q+` WHERE seller = $1`, append(args, viewer.ID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at DESC, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Change{}
	for rows.Next() {
		ch, err := scanChange(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// Change returns change request id if viewer may see it (its seller, an
// operator); otherwise ErrChangeNotFound, as for a missing ID.
func (s *Store) Change(ctx context.Context, viewer *accounts.Account, id string) (*Change, error) {
	q, args := `SELECT `+changeColumns+` FROM change_requests WHERE id = $1`, []any{id}
	if viewer.Role != accounts.Operator {
		q, args = q+` AND seller = $2`, append(args, viewer.ID)
	}
	ch, err := scanChange(s.db.QueryRowContext(ctx, q, args...))
	if errors.Is(err, errNoRows) {
		return nil, ErrChangeNotFound.Errorf("change request not found: %q (pib changes ls lists them)", id)
	}
	return ch, err
}

const changeColumns = `id, seller, state, rows_json, created_at, decided_at, decided_by, reason`

func scanChange(row interface{ Scan(...any) error }) (*Change, error) {
	var ch Change
	var raw string
	var decided sql.NullTime
	if err := row.Scan(&ch.ID, &ch.Seller, &ch.State, &raw, &ch.Created, &decided, &ch.DecidedBy, &ch.Reason); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(raw), &ch.Rows); err != nil {
		return nil, fmt.Errorf("change request %s: rows: %w", ch.ID, err)
	}
	ch.Created = ch.Created.UTC()
	if decided.Valid {
		t := decided.Time.UTC()
		ch.DecidedAt = &t
	}
	return &ch, nil
}

// Diff says, one line per change, what approving ch would do to the
// catalog as it is now.
func (s *Store) Diff(ctx context.Context, ch *Change) ([]string, error) {
	return diff(ctx, s.db, ch)
}

func diff(ctx context.Context, q querier, ch *Change) ([]string, error) {
	out := []string{}
	for _, r := range ch.Rows {
		opens := "draft: the seller only"
		if len(r.TestAccounts) > 0 {
			opens = "limited: the seller and " + strings.Join(r.TestAccounts, ", ")
		}
		option := fmt.Sprintf("add package group %s (%s)", r.PackageGroup, r.Platform)
		product := r.ProductID
		var vis Visibility
		if r.ProductID != "" {
			var title string
			err := q.QueryRowContext(ctx, `SELECT title, visibility FROM products WHERE id = $1 AND owner = $2`, r.ProductID, ch.Seller).Scan(&title, &vis)
			if err != nil && !errors.Is(err, errNoRows) {
				return nil, err
			}
			if err == nil {
				product = fmt.Sprintf("%s %q", r.ProductID, title)
			}
		}
		switch r.Request {
		case NewProduct:
			out = append(out, fmt.Sprintf("new product %q (%s)", r.ProductTitle, opens),
				fmt.Sprintf("new version %s of %q (%s): %s", r.VersionTitle, r.ProductTitle, opens, option))
		case NewVersion:
			out = append(out, fmt.Sprintf("new version %s of %s (%s): %s", r.VersionTitle, product, opens, option))
		case AddOption:
			out = append(out, fmt.Sprintf("version %s of %s: %s", r.VersionTitle, product, option))
			if len(r.TestAccounts) > 0 {
				out = append(out, fmt.Sprintf("version %s of %s: also visible to %s until it is public", r.VersionTitle, product, strings.Join(r.TestAccounts, ", ")))
			}
		case PublishVersion:
			var from Visibility
			err := q.QueryRowContext(ctx, `SELECT visibility FROM product_versions WHERE product_id = $1 AND title = $2`, r.ProductID, r.VersionTitle).Scan(&from)
			if err != nil && !errors.Is(err, errNoRows) {
				return nil, err
			}
			out = append(out, fmt.Sprintf("version %s of %s: %s → public", r.VersionTitle, product, from))
			if vis != Public {
				out = append(out, fmt.Sprintf("product %s: %s → public", product, vis))
			}
		}
	}
	return out, nil
}

// Approve applies pending change request id, all of it in one transaction
// after checking every row again against the catalog as it is now: a
// request the catalog has overtaken is ErrStale (with the problems as
// Details), a decided one ErrDecided; either way nothing changes.
func (s *Store) Approve(ctx context.Context, operator *accounts.Account, id string) (*Decision, error) {
	if operator.Role != accounts.Operator {
		return nil, ErrForbidden.Errorf("only an operator approves change requests")
	}
	ch, err := s.Change(ctx, operator, id)
	if err != nil {
		return nil, err
	}
	if ch.State != Pending {
		return nil, ErrDecided.Errorf("change request %s was already %s", ch.ID, ch.State)
	}
	gs, err := s.lookupGroups(ctx, ch.Seller, ch.Rows)
	if err != nil {
		return nil, err
	}
	d := &Decision{Event: EventApproved, Change: ch}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.decide(ctx, tx, ch, operator, Approved, ""); err != nil {
			return err
		}
		c := newChecker(ctx, tx, ch.Seller, gs)
		if err := c.check(ch.Rows); err != nil {
			return err
		}
		if e := c.result(ErrStale, "nothing was applied; reject the request and ask the seller to submit a new one"); e != nil {
			e.Code = problem.Conflict // valid once, not with the catalog of now
			return e
		}
		if d.Applied, err = diff(ctx, tx, ch); err != nil {
			return err
		}
		if d.Products, err = s.apply(ctx, tx, ch); err != nil {
			return err
		}
		if s.cfg.Decided != nil {
			return s.cfg.Decided(ctx, tx, d)
		}
		return nil
	})
	if errors.Is(store.Classify(err), store.ErrConflict) {
		// A concurrent approval took a title or a platform first.
		return nil, ErrStale.Errorf("change request %s conflicts with a change approved at the same time; nothing was applied (pib changes show %s)", ch.ID, ch.ID)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Reject refuses pending change request id with reason, which the seller
// sees.
func (s *Store) Reject(ctx context.Context, operator *accounts.Account, id, reason string) (*Decision, error) {
	if operator.Role != accounts.Operator {
		return nil, ErrForbidden.Errorf("only an operator rejects change requests")
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || utf8.RuneCountInString(reason) > MaxReason {
		return nil, &problem.Error{Code: problem.Invalid, Rule: "L2", Field: "reason", Message: fmt.Sprintf("give the seller a reason for the rejection (1–%d characters): what to change before submitting again", MaxReason)}
	}
	ch, err := s.Change(ctx, operator, id)
	if err != nil {
		return nil, err
	}
	d := &Decision{Event: EventRejected, Change: ch}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.decide(ctx, tx, ch, operator, Rejected, reason); err != nil {
			return err
		}
		if s.cfg.Decided != nil {
			return s.cfg.Decided(ctx, tx, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// decide records the decision on ch, if ch is still pending (of two
// concurrent decisions exactly one gets past this), and updates ch.
func (s *Store) decide(ctx context.Context, tx *sql.Tx, ch *Change, operator *accounts.Account, to State, reason string) error {
	at := s.now()
	res, err := tx.ExecContext(ctx, `UPDATE change_requests SET state = $2, decided_at = $3, decided_by = $4, reason = $5 WHERE id = $1 AND state = 'pending'`,
		ch.ID, string(to), at, operator.ID, reason)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = ErrDecided.Errorf("change request %s was already decided", ch.ID)
		}
		return err
	}
	ch.State, ch.DecidedAt, ch.DecidedBy, ch.Reason = to, &at, operator.ID, reason
	return nil
}

// apply writes ch's rows (checked in this transaction) and returns the
// products it touched.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, ch *Change) ([]string, error) {
	now := s.now()
	var touched []string
	versions := map[string]string{} // product ID NUL title → version ID, for rows below
	for _, r := range ch.Rows {
		testers, _, err := buyerIDs(ctx, tx, r.TestAccounts)
		if err != nil {
			return nil, err
		}
		vis := Draft
		if len(testers) > 0 {
			vis = Limited
		}
		productID := r.ProductID
		var versionID string
		switch r.Request {
		case NewProduct:
			productID = newID("prod-")
			highlights, err := json.Marshal(append([]string{}, r.Highlights...))
			if err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO products (id, owner, title, short_description, long_description, highlights, category,
				support_contact, eula_url, logo_url, visibility, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)`,
				productID, ch.Seller, r.ProductTitle, r.ShortDescription, r.LongDescription, string(highlights), r.Category,
				r.SupportContact, r.EULAURL, r.LogoURL, string(vis), now); err != nil {
				return nil, err
			}
			fallthrough
		case NewVersion:
			versionID = newID("ver-")
			if _, err := tx.ExecContext(ctx, `INSERT INTO product_versions (id, product_id, owner, title, release_notes, usage_instructions, visibility, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, versionID, productID, ch.Seller, r.VersionTitle, r.ReleaseNotes, r.UsageInstructions, string(vis), now); err != nil {
				return nil, err
			}
			versions[productID+"\x00"+r.VersionTitle] = versionID
		case AddOption, PublishVersion:
			versionID = versions[productID+"\x00"+r.VersionTitle]
			if versionID == "" {
				if err := tx.QueryRowContext(ctx, `SELECT id FROM product_versions WHERE product_id = $1 AND title = $2`, productID, r.VersionTitle).Scan(&versionID); err != nil {
					return nil, fmt.Errorf("version %q of %s: %w", r.VersionTitle, productID, err)
				}
			}
		}
		if r.Request == PublishVersion {
			for _, obj := range []struct{ table, id string }{{"products", productID}, {"product_versions", versionID}} {
				if _, err := tx.ExecContext(ctx, `UPDATE `+obj.table+` SET visibility = 'public' WHERE id = $1`, obj.id); err != nil {
					return nil, err
				}
			}
		} else {
			if err := s.addGroup(ctx, tx, ch.Seller, versionID, r, now); err != nil {
				return nil, err
			}
			for _, obj := range []struct{ table, id string }{{"products", productID}, {"product_versions", versionID}} {
				if err := grant(ctx, tx, obj.table, obj.id, testers); err != nil {
					return nil, err
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE products SET updated_at = $2 WHERE id = $1`, productID, now); err != nil {
			return nil, err
		}
		if len(touched) == 0 || touched[len(touched)-1] != productID {
			touched = append(touched, productID)
		}
	}
	return touched, nil
}

// addGroup adds r's package group to version as a fulfillment option. The
// unique index refuses a second group of one platform, even from a
// concurrent approval.
func (s *Store) addGroup(ctx context.Context, tx *sql.Tx, seller, versionID string, r Row, now time.Time) error {
	var groupID, platform string
	err := tx.QueryRowContext(ctx, `SELECT id, platform FROM package_groups WHERE owner = $1 AND (id = $2 OR name = $2)`, seller, r.PackageGroup).Scan(&groupID, &platform)
	if err != nil {
		return fmt.Errorf("package group %q: %w", r.PackageGroup, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO fulfillment_options (id, version_id, kind, group_id, platform, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		newID("ful-"), versionID, string(PackageGroup), groupID, platform, now)
	return err
}

// grant lets accounts see object (a row of table, products or
// product_versions); a draft object becomes limited.
func grant(ctx context.Context, tx *sql.Tx, table, object string, accounts []string) error {
	if len(accounts) == 0 {
		return nil
	}
	for _, a := range accounts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO catalog_grants (object_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, object, a); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `UPDATE `+table+` SET visibility = 'limited' WHERE id = $1 AND visibility = 'draft'`, object)
	return err
}
