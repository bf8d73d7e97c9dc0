# pib's two entry points (see README.md): `make demo` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
# go.mod names the exact Go version; a Go >= 1.21 (Debian 12's from
# bookworm-backports: scripts/deps.sh) fetches it from the module proxy.
# Some installs default to GOTOOLCHAIN=local in their go.env; the
# environment wins over that, and a GOTOOLCHAIN you set wins over this.
export GOTOOLCHAIN ?= auto
PIB_DATA ?= $(CURDIR)/pib-data
GO_TEST_FLAGS ?= -timeout 40m

.PHONY: demo test fuzz lint build deps test-deps bench soak clean

pib: $(shell find cmd internal -name '*.go' -o -name '*.sql') go.mod go.sum
	go build -o pib ./cmd/pib

build: pib

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh test

# The main job on the embedded defaults (SQLite and blobs in $(PIB_DATA)):
# see scripts/demo.sh. On our machines the OSV data comes from shared/.
PIB_OSV_ZIP ?= $(wildcard ../shared/data/osv/debian-all-2025-02-12.zip)
export PIB_OSV_ZIP PIB_DATA

demo: deps pib
	@scripts/demo.sh

# Every test, against SQLite and PostgreSQL, with a fresh shared cache per
# run (the Debian base image is bootstrapped for real once per run).
test: test-deps lint
	@cache=$$(mktemp -d /var/tmp/pib-test-cache.XXXXXX); \
	trap 'umount -R -l $$cache 2>/dev/null; rm -rf $$cache' EXIT; \
	PIB_TEST_CACHE=$$cache go test $(GO_TEST_FLAGS) ./... && \
	PIB_TEST_CACHE=$$cache $(MAKE) --no-print-directory fuzz

# Every fuzz target for FUZZEXECS executions (their seed corpora in
# testdata/fuzz already ran as tests above). A count, not a duration: with
# -fuzztime 10s, Go's fuzzing engine fails a run whose worker is still busy
# with one input when the time is up ("context deadline exceeded", seen on
# a loaded machine), and a count also gives every target the same work
# whatever the machine. go test -fuzz takes one target per package per run,
# so loop over the targets go test -list finds: new ones join by themselves.
FUZZEXECS ?= 1000
FUZZ_FLAGS ?= -fuzztime $(FUZZEXECS)x -fuzzminimizetime 100x -parallel 1 -timeout 10m

fuzz:
	@set -eo pipefail; \
	go test -list '^Fuzz' ./... | \
	awk '/^Fuzz/ { names[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2, names[i]; n = 0 }' | \
	while read -r pkg name; do \
		echo "fuzz $$pkg $$name for $(FUZZEXECS) executions"; \
		go test -run '^$$' -fuzz "^$$name\$$" $(FUZZ_FLAGS) "$$pkg" </dev/null || exit 1; \
	done

# go vet and staticcheck at a pinned version (go run fetches it from the
# module proxy once; it is not a dependency of pib).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The Windows build: pib is also the Windows guest's agent of vm builds
# (issue 18), so every package builds for Windows or is marked
# //go:build linux (the service's sandbox, images and machines).
lint:
	go vet ./...
	go run $(STATICCHECK) ./...
	GOOS=windows GOARCH=amd64 go build ./...

# Every benchmark and comparison, repeated, into bench/RESULTS.md (not
# committed): see bench/run.sh. RUNS=3 for a quicker, rougher table.
bench: test-deps
	@bench/run.sh

# The full load and fault suites (make test runs short versions): 50 API
# clients for 60 s on SQLite and PostgreSQL, and 20 kill -9s of pib serve
# and pib worker during builds on PostgreSQL and S3 (SeaweedFS).
soak: test-deps
	@cache=$$(mktemp -d /var/tmp/pib-test-cache.XXXXXX); \
	trap 'umount -R -l $$cache 2>/dev/null; rm -rf $$cache' EXIT; \
	PIB_SOAK=1 PIB_TEST_CACHE=$$cache go test -timeout 60m -count=1 -v -run '^(TestLoad|TestFaults)$$' ./cmd/pib

clean:
	rm -f pib
