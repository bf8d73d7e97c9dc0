// Package testbuild runs pib's test builds on this machine: Builder
// installs a package group on a base image in the sandbox and stores a
// passing install as a new image (the pipeline's Builder and Cleaner), and
// Scanner scans that image and keeps its SBOMs (the pipeline's Scanner).
// pib build runs the same install with Install.
//
// It also defines the scan report a build keeps, ScanReport: the one Go
// type of it, written here and read by the API. The pipeline stores it as
// opaque JSON; its field names are part of the API (GET
// /v1/builds/{id}/report).
//
// A build runs in Dir(dataDir, buildID).
//
// Limits: Linux installers only, as the sandbox.
package testbuild
