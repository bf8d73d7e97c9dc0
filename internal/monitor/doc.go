//go:build linux

// Package monitor watches the images that matter as the vulnerability
// data changes (rule S5): a scan is a snapshot, and without this nobody
// would learn that a published or private image is affected by a
// vulnerability found after it was scanned.
//
// The images that matter are the latest Successful build of every group on
// each of its OS versions, the images of every published version (catalog
// fulfillment options of kind image) and every private image. Their
// inventories, kept per image ID by package inventories, are matched again
// with scan.Rematch — no root file system is read. The findings of the
// latest re-match are kept per image (table image_monitoring) beside the
// verdict its scan gave and the date of the data it used; an image whose
// vulnerability IDs changed gets a vulnerabilities.changed event: a webhook
// delivery to its owner and, for a build's image, an entry in the build's
// history, naming the IDs added and withdrawn with their severity.
//
// When it runs: on demand (pib rescan, POST /v1/rescan), and as River
// periodic jobs run by the pipeline's leader: a watch (every minute by
// default) that re-matches when the data changed since the last run — an
// import by pib vulndb import or by another process — and, when an
// interval is configured, a refresh that first downloads new data with
// conditional requests (pib vulndb update's). The refresh is off by
// default: a server without network access must not try.
//
// Limits, candidly:
//   - An image scanned before inventories were kept has none: it is
//     counted as not monitored, never read again; scanning it anew (a new
//     build) brings it in.
//   - The first re-match of an image compares with its scan's findings
//     when a scan report is kept with its build; an image without one (a
//     published image of kind image not built here) starts from its first
//     re-match, and only later changes are announced.
//   - "Changed" means the set of vulnerability IDs changed. A changed
//     fixed version or severity of an ID already reported is recorded
//     (the status view shows the current ones) but not announced.
//   - Two runs at once (the watch and pib rescan) each announce only what
//     they changed: every image's row is a compare-and-set on the digest
//     of its previous findings.
package monitor
