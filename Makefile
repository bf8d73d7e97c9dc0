# pib's two entry points (see README.md): `make demo` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
PIB_DATA ?= ./pib-data
GO_TEST_FLAGS ?= -timeout 40m

.PHONY: demo test build deps test-deps bench clean

pib: $(shell find cmd internal -name '*.go' -o -name '*.sql') go.mod go.sum
	go build -o pib ./cmd/pib

build: pib

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh test

# The main job on the embedded defaults: SQLite and blobs in $(PIB_DATA),
# a Debian 12 base image bootstrapped on first use.
demo: deps pib
	@./pib --data $(PIB_DATA) image inspect debian-12 >/dev/null 2>&1 || ./pib --data $(PIB_DATA) image bootstrap debian-12
	@./pib --data $(PIB_DATA) image ls

# Every test, against SQLite and PostgreSQL, with a fresh shared cache per
# run (the Debian base image is bootstrapped for real once per run).
test: test-deps
	@cache=$$(mktemp -d /var/tmp/pib-test-cache.XXXXXX); \
	trap 'umount -R -l $$cache 2>/dev/null; rm -rf $$cache' EXIT; \
	PIB_TEST_CACHE=$$cache go test $(GO_TEST_FLAGS) ./...

bench: test-deps
	go test -run '^$$' -bench . -benchtime 3x ./...

clean:
	rm -f pib
