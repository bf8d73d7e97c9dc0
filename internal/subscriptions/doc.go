//go:build linux

// Package subscriptions records which buyer subscribes to which product
// (SPEC C1): the first thing a private image build checks (C4,
// SubscriptionNotFound).
//
// A buyer may subscribe only to a product it may see: public, or limited
// naming the account. Every lookup goes through the catalog's
// visibility-checked Get, so a product the buyer may not see answers
// exactly like one that does not exist (catalog.ErrNotFound).
//
// Limits: there is no unpublishing yet, so a subscription is not checked
// again against the product's visibility once made; subscribing is free
// (no offer, price or entitlement) and has no end date.
package subscriptions
