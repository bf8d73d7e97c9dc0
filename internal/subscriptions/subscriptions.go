//go:build linux

package subscriptions

import (
	"context"
	"errors"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// Subscription is an account's subscription to a product.
type Subscription struct {
	ProductID    string    `json:"product_id"`
	ProductTitle string    `json:"product_title"`
	Created      time.Time `json:"created"`
}

// ReasonNotFound is the Reason (C4) of a request that needs a subscription
// the account does not have.
const ReasonNotFound problem.Reason = "SubscriptionNotFound"

// ErrNotSubscribed is a product the account may see but does not
// subscribe to (C4): its Reason is ReasonNotFound.
var ErrNotSubscribed = &problem.Error{Code: problem.NotFound, Rule: "C4", Field: "product", Reason: ReasonNotFound,
	Message: "not subscribed to the product"}

// Catalog finds the products a viewer may see (*catalog.Store).
type Catalog interface {
	// Get returns product id if viewer may see it, else catalog.ErrNotFound.
	Get(ctx context.Context, viewer *accounts.Account, id string) (*catalog.Product, error)
}

// Store keeps subscriptions.
type Store struct {
	db      *store.DB
	catalog Catalog
	now     func() time.Time
}

// New returns the subscriptions of db; products are looked up in cat.
func New(db *store.DB, cat Catalog) *Store {
	return &Store{db: db, catalog: cat, now: func() time.Time { return time.Now().UTC() }}
}

// Add subscribes buyer to product id, which it must be able to see (else
// catalog.ErrNotFound, as for a missing ID). Subscribing again changes
// nothing: created reports whether this call made the subscription.
func (s *Store) Add(ctx context.Context, buyer *accounts.Account, id string) (sub *Subscription, created bool, err error) {
	p, err := s.catalog.Get(ctx, buyer, id)
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	_, err = s.db.ExecContext(ctx, `INSERT INTO subscriptions (account_id, product_id, created_at) VALUES ($1, $2, $3)`, buyer.ID, p.ID, now)
	if err = store.Classify(err); errors.Is(err, store.ErrConflict) {
		sub, err := s.get(ctx, buyer.ID, p.ID)
		return sub, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return &Subscription{ProductID: p.ID, ProductTitle: p.Title, Created: now}, true, nil
}

// List returns buyer's subscriptions by product title.
func (s *Store) List(ctx context.Context, buyer *accounts.Account) ([]*Subscription, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT s.product_id, p.title, s.created_at FROM subscriptions s JOIN products p ON p.id = s.product_id
		WHERE s.account_id = $1 ORDER BY p.title, p.id`, buyer.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Subscription{}
	for rows.Next() {
		var sub Subscription
		if err := rows.Scan(&sub.ProductID, &sub.ProductTitle, &sub.Created); err != nil {
			return nil, err
		}
		sub.Created = sub.Created.UTC()
		out = append(out, &sub)
	}
	return out, rows.Err()
}

// Remove ends buyer's subscription to product id; none is
// ErrNotSubscribed. Builds already made are not touched.
func (s *Store) Remove(ctx context.Context, buyer *accounts.Account, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM subscriptions WHERE account_id = $1 AND product_id = $2`, buyer.ID, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err != nil {
			return err
		}
		return ErrNotSubscribed.Errorf("not subscribed to product %q (pib subscriptions ls lists yours)", id)
	}
	return nil
}

// Check returns nil when account subscribes to product id, else
// ErrNotSubscribed.
func (s *Store) Check(ctx context.Context, account *accounts.Account, id string) error {
	_, err := s.get(ctx, account.ID, id)
	return err
}

func (s *Store) get(ctx context.Context, account, id string) (*Subscription, error) {
	var sub Subscription
	err := s.db.QueryRowContext(ctx, `SELECT s.product_id, p.title, s.created_at FROM subscriptions s JOIN products p ON p.id = s.product_id
		WHERE s.account_id = $1 AND s.product_id = $2`, account, id).Scan(&sub.ProductID, &sub.ProductTitle, &sub.Created)
	if errors.Is(store.Classify(err), store.ErrNotFound) {
		return nil, ErrNotSubscribed.Errorf("not subscribed to product %q; subscribe first (pib subscriptions add %s)", id, id)
	}
	if err != nil {
		return nil, err
	}
	sub.Created = sub.Created.UTC()
	return &sub, nil
}
