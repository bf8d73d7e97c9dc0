//go:build linux

// Package testbuild runs pib's test builds on this machine: Builder
// installs a package group on a base image in the sandbox and stores a
// passing install as a new image (the pipeline's Builder and Cleaner), and
// Scanner scans that image and keeps its SBOMs (the pipeline's Scanner).
// pib build runs the same install with Install. Scanner keeps every
// scanned image's inventory (package inventories) and scans a build's
// image incrementally on its base's kept state.
//
// It also defines the reports a build keeps, BuildReport and ScanReport:
// the one Go type of each, written here and read by the API and the CLI.
// The pipeline stores them as opaque JSON; their field names are part of
// the API (GET /v1/builds/{id}/report).
//
// Layers are reproducible: the times of what a build writes are clamped
// (pipeline.Config.SourceDateEpoch, by default the base image's creation
// time), and a build's report compares its layer with the one the owner's
// previous build of the same inputs made (Reproducibility): the same, or
// which files the installer itself made different.
//
// When the OS version has its boot test on (SetBootTests; an operator
// setting, osversions), a build whose install passed I1–I8 boots its new
// image (package boottest) before the scan: a failure of V1–V3 is a
// finding like any other, the image is removed, and the build report keeps
// the probe's facts and the console log (BootReport). The base image is
// booted once, per image ID, for the failed units V1 forgives; the result
// is kept in <dataDir>/boot-tests.
//
// Where the installer runs is the OS version's build backend (SetVM; an
// operator setting, osversions): the sandbox (Install), or a QEMU machine
// booted from the base image's disk with pib's guest agent (InstallVM,
// package vmbuild). Both give the same outcome: log, findings, changed
// files and one new layer, then the boot test and the scan. A sandbox
// build that failed because systemctl found no running systemd gets a
// finding that says so and points at the vm backend.
//
// A build runs in Dir(dataDir, buildID). A server build hands its log over
// in the outcome, which the pipeline stores with the build, and removes
// that directory; only a build that fails with an error (a platform fault,
// which the operators investigate) leaves it, log included, until the
// build is retried. pib build keeps its directory and log: they are its
// output (rule I8).
//
// Limits: Linux installers only (the vm backend reads ext4 disks); a report names no host
// path, so a seller reads the log through the API, never on the worker.
package testbuild
