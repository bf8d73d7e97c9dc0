//go:build linux

// Package catalog holds what buyers shop from: products, their versions
// and each version's fulfillment options (a package group per platform,
// and/or an image), who may see each (SPEC, catalog visibility), and the
// change requests through which sellers change it (L2, F1–F3).
//
// # Visibility
//
// A product and each of its versions is draft (its seller only), limited
// (its seller and the buyer accounts the seller named for test fulfilment)
// or public. Every read for a viewer goes through one condition, visibleTo:
// List and Get return only what the viewer may see, a version is seen only
// with its product, and a product the viewer may not see is ErrNotFound
// with the same message as a missing ID. Operators see everything; the API
// audits their reads. Test accounts (the grants) are shown only to the
// seller and operators.
//
// # Changes
//
// Nothing is written to the catalog but by an approved change request.
// Submit validates every row (a load form's rows, converted by the API into
// RowInput) against the database and the rules, returns every problem at
// once with its cell, and stores one pending change request. Approve
// re-validates the rows against the catalog as it is then, inside the
// transaction that applies them: all rows or none; a request the catalog
// has overtaken is a conflict (ErrStale) and stays pending for the operator
// to reject. Reject needs a reason. A decided request cannot be decided
// again (ErrDecided). Config.Decided runs inside the deciding transaction,
// so a webhook delivery queued there commits with the decision.
//
// The rules: F3 (new product) needs a title the seller has not used, the
// product's descriptions, a category from Categories, a support contact,
// and its first version with a package group; F2 (new version of one of
// the seller's products) needs a version title new to that product and a
// package group; F1 (add fulfillment option) adds a package group to an
// existing version — or to one a row above it in the same form adds, so
// a new version can get its Linux and its Windows group in one form. For
// all three the package group must be the seller's (another seller's reads
// exactly like a missing one), its software version must equal the
// version title, its latest submission's builds must all be Successful on
// every OS version the group names, and the version must not already have
// a group of that platform (a UNIQUE index backs this against races). No
// request removes or replaces an option: a version's image stays.
//
// # Publishing
//
// Approval makes new products and versions draft, or limited when the row
// names test accounts, never public: the seller test-fulfils first (F2).
// Publish makes a pending change request ("publish version") that, once an
// operator approves it, makes the version public, and its product too if
// it was not yet. Going public is thus reviewed like every other change,
// through the same queue, diff and audit trail. There is no unpublish yet.
//
// # Limits
//
// Group state is read before the deciding transaction (the pipeline reads
// through its own connection): a group resubmitted in that instant is
// judged by its previous builds. Two pending requests may ask for the same
// thing; the second to be approved is then stale. Products cannot be
// edited, and test accounts cannot be removed, by a change request yet.
package catalog
