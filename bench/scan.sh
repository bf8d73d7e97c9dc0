#!/usr/bin/env bash
# Figures for the scanner (issue 4): import of the shared Debian OSV zip,
# warm full scan of the debian-12 base image, and a side-by-side run of
# osv-scanner v2 (offline) on the same image and data.
#
#   bash bench/scan.sh            # Go benchmarks only
#   OSV_SCANNER=/path/to/osv-scanner bash bench/scan.sh   # plus the comparison
#   RUNS=5           runs of each scanner, alternated (default 3); medians
#   SCAN_GO_BENCH=0  skip the Go benchmarks (bench/run.sh runs them itself)
#   PIB=/path/to/pib use this binary instead of building one
# RESULT lines (pib-scan, osv-scan seconds; pib-ids, osv-ids, common-ids)
# are what bench/run.sh reads.
#
# osv-scanner is installed for the benchmark only:
#   GOTOOLCHAIN=go1.27.3 GOBIN=/tmp/osvbin go install github.com/google/osv-scanner/v2/cmd/osv-scanner@latest
# Needs root (the debian-12 test image is bootstrapped by internal/testenv)
# and ../shared/data/osv/debian-all-2025-02-12.zip.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
zip=$(cd .. && pwd)/shared/data/osv/debian-all-2025-02-12.zip
[ -f "$zip" ] || { echo "missing $zip" >&2; exit 2; }

RUNS=${RUNS:-3}
if [ "${SCAN_GO_BENCH:-1}" != 0 ]; then
	echo "== import of $(basename "$zip") (fresh database per engine)"
	go test -run '^$' -bench 'ImportDebianZip' -benchtime 1x ./internal/vulndb/ | grep -E '^Benchmark'

	echo "== warm full scan of debian-12 (inventory + SBOM + matching + checks + verdict), 10 runs"
	go test -run '^$' -bench 'ScanDebian12' -benchtime 10x ./internal/scan/ | grep -E '^Benchmark'
fi

[ -n "${OSV_SCANNER:-}" ] || { echo "(set OSV_SCANNER to compare with osv-scanner)"; exit 0; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${PIB:-}" ]; then
	cp "$PIB" "$work/pib"
else
	go build -o "$work/pib" ./cmd/pib
fi
data=$work/data
# The debian-12 image the tests bootstrapped (internal/testenv): scan the same layer.
cache=${PIB_TEST_CACHE:-${TMPDIR:-/tmp}/pib-test-cache}/debian-12
read -r image_id rootfs < "$cache/done"
mkdir -p "$data"
cp "$cache"/data/pib.db* "$data"/
ln -s "$cache/data/blobs" "$data/blobs"
ln -s "$cache/data/cache" "$data/cache"
"$work/pib" --data "$data" vulndb import "$zip" >/dev/null
"$work/pib" --data "$data" image export "$image_id" --format docker-archive -o "$work/image.tar"

# osv-scanner reads <dir>/osv-scalibr/<Ecosystem>/all.zip (older: osv-scanner/…).
# It refuses to run offline without a database for every ecosystem it
# sees: the image's Debian-packaged Python modules make it want PyPI, which
# gets an empty zip (pib has no PyPI data either).
for d in osv-scalibr osv-scanner; do
	mkdir -p "$work/osvdb/$d/Debian" "$work/osvdb/$d/PyPI"
	ln -s "$zip" "$work/osvdb/$d/Debian/all.zip"
	(cd "$work/osvdb/$d/PyPI" && printf 'PK\005\006%018d' 0 | tr 0 '\000' > all.zip)
done

export OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY=$work/osvdb
now() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f", m / 1e9 }'; }
# One process per run (start-up and syft's license scanner build
# included, as a user running either tool sees it), the two tools
# alternated so that a change in the machine's load hits both.
echo "== pib scan and osv-scanner scan image --archive --offline, $RUNS runs each, alternated"
: > "$work/pib.t"
: > "$work/osv.t"
for i in $(seq "$RUNS"); do
	t0=$(now); "$work/pib" --data "$data" scan "$image_id" --json > /dev/null 2>&1 || true; t1=$(now)
	echo $((t1 - t0)) >> "$work/pib.t"
	t0=$(now); "$OSV_SCANNER" scan image --archive --offline --format json "$work/image.tar" > /dev/null 2>&1 || true; t1=$(now)
	echo $((t1 - t0)) >> "$work/osv.t"
	echo "run $i: pib $(median < <(tail -1 "$work/pib.t")) s, osv-scanner $(median < <(tail -1 "$work/osv.t")) s"
done
echo "RESULT pib-scan $(median < "$work/pib.t")"
echo "RESULT osv-scan $(median < "$work/osv.t")"
"$work/pib" --data "$data" scan "$image_id" --json > "$work/pib.json" || true
"$OSV_SCANNER" scan image --archive --offline --format json "$work/image.tar" > "$work/osv.json" 2>"$work/osv.err" || true

echo "== vulnerability IDs (per source package)"
jq -r '.vulnerabilities[] | "\(.source_package) \(.id)"' "$work/pib.json" | sort -u > "$work/pib.ids"
# osv-scanner reports OS packages under their source name.
jq -r '.results[]?.packages[]? | .package.name as $p | .vulnerabilities[]? | "\($p) \(.id)"' "$work/osv.json" | sort -u > "$work/osv.ids"
echo "pib: $(wc -l < "$work/pib.ids")  osv-scanner: $(wc -l < "$work/osv.ids")  common: $(comm -12 "$work/pib.ids" "$work/osv.ids" | wc -l)"
echo "RESULT pib-ids $(wc -l < "$work/pib.ids")"
echo "RESULT osv-ids $(wc -l < "$work/osv.ids")"
echo "RESULT common-ids $(comm -12 "$work/pib.ids" "$work/osv.ids" | wc -l)"
echo "-- only pib:"; comm -23 "$work/pib.ids" "$work/osv.ids"
echo "-- only osv-scanner:"; comm -13 "$work/pib.ids" "$work/osv.ids"
