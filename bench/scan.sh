#!/usr/bin/env bash
# Figures for the scanner (issue 4): import of the shared Debian OSV zip,
# warm full scan of the debian-12 base image, and a side-by-side run of
# osv-scanner v2 (offline) on the same image and data.
#
#   bash bench/scan.sh            # Go benchmarks only
#   OSV_SCANNER=/path/to/osv-scanner bash bench/scan.sh   # plus the comparison
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

echo "== import of $(basename "$zip") (fresh database per engine)"
go test -run '^$' -bench 'ImportDebianZip' -benchtime 1x ./internal/vulndb/ | grep -E '^Benchmark'

echo "== warm full scan of debian-12 (inventory + SBOM + matching + checks + verdict), 10 runs"
go test -run '^$' -bench 'ScanDebian12' -benchtime 10x ./internal/scan/ | grep -E '^Benchmark'

[ -n "${OSV_SCANNER:-}" ] || { echo "(set OSV_SCANNER to compare with osv-scanner)"; exit 0; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/pib" ./cmd/pib
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

TIMEFORMAT=%R
time_it() { { time "$@" >/dev/null 2>&1 || true; } 2>&1; }

echo "== pib scan (one process per run: includes start-up and the license scanner build)"
for i in 1 2 3; do echo "pib scan: $(time_it "$work/pib" --data "$data" scan "$image_id" --json) s"; done
"$work/pib" --data "$data" scan "$image_id" --json > "$work/pib.json" || true

echo "== osv-scanner scan image --archive --offline"
export OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY=$work/osvdb
for i in 1 2 3; do echo "osv-scanner: $(time_it "$OSV_SCANNER" scan image --archive --offline --format json "$work/image.tar") s"; done
"$OSV_SCANNER" scan image --archive --offline --format json "$work/image.tar" > "$work/osv.json" 2>"$work/osv.err" || true

echo "== vulnerability IDs (per source package)"
jq -r '.vulnerabilities[] | "\(.source_package) \(.id)"' "$work/pib.json" | sort -u > "$work/pib.ids"
# osv-scanner reports OS packages under their source name.
jq -r '.results[]?.packages[]? | .package.name as $p | .vulnerabilities[]? | "\($p) \(.id)"' "$work/osv.json" | sort -u > "$work/osv.ids"
echo "pib: $(wc -l < "$work/pib.ids")  osv-scanner: $(wc -l < "$work/osv.ids")  common: $(comm -12 "$work/pib.ids" "$work/osv.ids" | wc -l)"
echo "-- only pib:"; comm -23 "$work/pib.ids" "$work/osv.ids"
echo "-- only osv-scanner:"; comm -13 "$work/pib.ids" "$work/osv.ids"
