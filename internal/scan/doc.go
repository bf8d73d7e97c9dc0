//go:build linux

// Package scan checks an image's root filesystem against rules S1–S4:
// inventory and SBOM, known vulnerabilities, image policy checks, verdict.
//
// A Scanner runs one pass per image:
//
//   - S1: syft, as a library, catalogs installed OS packages (dpkg, rpm,
//     apk, …) and installed language packages with a deliberately chosen
//     set of catalogers (see catalogerSelection) and no file digests; the
//     SBOM is kept with the report and encoded as CycloneDX or SPDX JSON.
//   - S2: packages are matched against the OSV records of package vulndb:
//     /etc/os-release picks the OSV ecosystem (Debian:12, Ubuntu:22.04:LTS,
//     Alpine:v3.19, …); Debian and Ubuntu packages match by source package
//     and source version, Alpine by origin, RPM distributions by binary
//     name; language packages by their package URL's ecosystem. Versions
//     compare with osv-scalibr's semantic package (the comparator
//     osv-scanner uses): dpkg, rpm, apk, PyPI, semver, Maven, … rules.
//     Each package carries the image paths it was found at (syft's primary
//     evidence: the package database, a .dist-info/METADATA, a
//     package.json, the Go binary), and so does each finding. A finding's
//     fixed version is the nearest fix: the first version above the
//     installed one its record does not affect (not a later branch's);
//     a package with several vulnerabilities also gets the one version
//     fixing them all (Upgrade). Go versions are written as installed
//     (v0.3.8, go1.22.5). Severity is, in order, the highest CVSS v3/v4
//     base score (pandatix/go-cvss), GitHub's database_specific.severity,
//     the highest CVSS v2 score (v2's scale, no Critical), the
//     distribution's urgency; else the best of the stored records that
//     are the same vulnerability (those it aliases, those aliasing it,
//     the CVEs a DSA/DLA names); else Unknown (SeveritySource says which).
//     Records that alias each other, directly or through a shared ID,
//     are one Group per package (as osv-scanner's groups; a DSA's or
//     USN's related CVEs count as aliases, as there): totals and the
//     policy count groups.
//   - S3: seven independent checks (checks.go), each reading the image
//     through package rootfs: paths resolve inside the image root, only
//     regular files are read, with size caps (T2). A link out of the image
//     leads nowhere; a FIFO or device is never opened (an sshd_config or
//     shadow that is one fails its check, the secret search skips it).
//   - S4: a Policy turns findings into violations; the report names each
//     one and why.
//
// A build's image (its base plus one layer) is scanned incrementally
// (ScanOn) from the state the base's scan kept (Report.State): syft
// catalogs a sparse view, an overlay of the layer on the base's evidence
// files (made once per base), so packages, IDs and relationships are
// syft's own; package-to-file relationships are resolved for the whole
// image by fileIndex, reusing the base's where the layer leaves them
// alone; the S3.6 search reads the layer's files and keeps the base's
// other findings. The result is the full scan's: TestScanOnIsScan,
// TestScanOnDebian12 and testbuild's TestServerScanIsFullScan compare
// both, field by field.
//
// Limits, stated plainly:
//   - The incremental scan mirrors what syft v1.57 reads (package
//     evidence, distribution files, its index's link and exclusion rules;
//     see fileIndex, imageLinks). A syft upgrade must run the identity
//     tests, and bump stateVersion if what the state means changes.
//   - It needs to mount an overlay (root, as the build sandbox does); it
//     reads the views of base images it made under the work directory,
//     which are not removed with the base image (they are small).
//   - A cataloger that would find a package only from a combination of a
//     base file that is no package's evidence and a new file is not
//     modelled (none of the selected catalogers does so in v1.57).
//   - A Debian package copy of a language package (python3-jinja2's Jinja2)
//     is matched through Debian's records only; pip/npm-installed copies
//     are matched in their own ecosystem.
//   - OSV GIT ranges are not evaluated (an image has no commits).
//   - Records no source rates (Debian's "not yet assigned" CVEs, Go
//     records whose GitHub advisory is not loaded) are Unknown: the
//     default policy does not judge them (unknown_severity: ignore) and
//     the report counts those it would otherwise have failed on.
//   - Only aliases recorded in the loaded data group findings: a PYSEC
//     and a GHSA record of one CVE group only if both list that CVE.
//   - The S3.6 secret search reads regular files up to 1 MiB under /etc,
//     /root, /home, /opt, /srv, /usr/local, /var/lib, /var/www and the temp
//     directories; packaged files in /usr and /lib are not searched.
//   - syft reads the directory itself and resolves link targets the
//     host's way; links whose targets would take it out of the image are
//     excluded from its index (syftEscapes). Its file reads are syft's own:
//     it skips FIFOs and devices when indexing.
//   - The end-of-life table (S3.7) is data in the code and must be kept
//     current.
//   - syft cannot download anything in pib: go.mod replaces
//     hashicorp/go-getter, which syft imports only to fetch remote sources,
//     with the stub module in nogetter/ (its doc says why: the cloud SDKs
//     it linked were 40 MB of the binary). syft still links stereoscope's
//     Docker, containerd and Podman clients (and gRPC with them) through
//     its top-level package, which pib needs for CreateSBOM.
package scan
