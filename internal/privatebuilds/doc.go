//go:build linux

// Package privatebuilds runs buyers' private image builds (SPEC C1–C6): a
// product version's package group installed onto the buyer's own gold
// image, giving a private image only that account sees.
//
// Create checks the request before anything runs, in this order, each
// failure with its Reason (problem.Reason, sent as "reason"; the Code and
// HTTP status are the closed set's):
//
//   - a repeated client token: the same parameters give the same build
//     back; others are IdempotentParameterMismatch (409, C4);
//   - the product must be one the caller may see (else 404 as for a
//     missing ID), and subscribed: SubscriptionNotFound (404, C4) — its
//     seller test-fulfils its own product without one (F2);
//   - the version (ID or title) and fulfillment option must be visible to
//     the caller (404); no option given picks the version's package group
//     of the gold image's platform;
//   - the gold image must be the caller's (another account's answers
//     exactly like a missing one, 404);
//   - the gold image's OS family must be the group's platform, and its
//     distribution and version those of one of the group's OS versions:
//     InstallerMismatch (400, C2), before any build exists;
//   - a gold image that carries this fulfillment already (its tags, or an
//     image it was built from) is InvalidSourceImage (400, C5);
//   - at most Config.Limit of the account's private builds in progress at
//     once: BuildLimitExceeded (409, C4).
//
// The build itself is a pipeline build (pipeline.KindPrivate): the same
// sandbox rules, scan, states, history, troubleshooting text, webhook
// events and operator queue as a seller's test build. Its image is owned
// by the caller and tagged (TagFulfillment, TagProduct, TagVersion,
// TagSourceImage, TagName, TagDescription, and the caller's own tags);
// only its new layer is stored, the gold image's layers are shared.
//
// Idempotency holds under races: the request row and its build are written
// in one transaction, a UNIQUE (account, client token) index backs it,
// and the account's row is locked (PostgreSQL) while the limit is counted.
//
// Limits: the image exists (tagged) once the install passed, whatever the
// scan then says; the build's state says whether it is fit to use. The
// gold image's distribution is matched to the base images' exactly (ID and
// VERSION_ID of os-release).
package privatebuilds
