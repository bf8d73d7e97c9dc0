// Package vulndb is pib's local vulnerability database in the OSV format
// (rule S2), kept in the metadata store beside everything else.
//
// Records come from OSV zips (osv.dev's per-ecosystem all.zip layout) or
// directories of OSV JSON files, either imported by hand or downloaded by
// Update with conditional requests. Import is idempotent: a record replaces
// the stored one only when its `modified` is newer; withdrawn records are
// not stored (and remove an older stored version); a record that does not
// parse is reported by ID with its reason and skipped. A record without a
// modified time (missing, or golang/vulndb's 0001-01-01T00:00:00Z) is
// imported and counted; it replaces a stored one of the same ID when its
// content differs.
//
// Limits: only what matching and reports need is stored (ID, modified,
// summary, every alias, the CVEs an advisory lists as related, severity
// vectors, GitHub's database_specific.severity, and per affected package
// its ranges, versions and ecosystem_specific urgency); details and
// references are dropped, so reports link to the ID. Records stored by a
// pib older than this format are replaced at the next import of the same
// data (vulndb update then downloads its sources unconditionally).
// Matching itself lives in package scan, which knows installed packages.
package vulndb
