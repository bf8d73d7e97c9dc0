#!/usr/bin/env bash
# make bench (issue 13): every benchmark of the module, repeated, and the
# side-by-side comparisons, written as one Markdown table to
# bench/RESULTS.md (not committed; the README shows a recent one).
#
# Rows: every Go benchmark found by `go test -list` (each metric it
# reports, the median over its repeats); pib build against the bare
# unshare+chroot floor (bench/build.sh); pib scan against osv-scanner
# offline on the same image and data, findings compared (bench/scan.sh).
# An expected benchmark that does not exist (yet) gets a "not measured"
# row, so the table says what is missing instead of leaving it out.
# Nothing here asserts on time: the targets are shown beside the figures.
#
# Usage (as root): bench/run.sh        (make bench; about 10–15 min here)
#   RUNS            repeats of each figure (default 5)
#   PIB_TEST_CACHE  the tests' cache with the bootstrapped debian-12 image
#                   (default /var/tmp/pib-bench-cache, kept between runs;
#                   the first run bootstraps it, ~1 min)
#   PIB_BENCH_TOOLS where osv-scanner is installed from the Go module proxy
#                   when it is not on PATH (default /var/tmp/pib-bench-tools)
#   BENCH           only Go benchmarks whose name matches this regexp
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root (sandbox: namespaces, mounts, cgroups)" >&2; exit 2; }
export PATH=/usr/local/go/bin:$PATH
RUNS=${RUNS:-5}
OUT=${OUT:-bench/RESULTS.md}
export PIB_TEST_CACHE=${PIB_TEST_CACHE:-/var/tmp/pib-bench-cache}
TOOLS=${PIB_BENCH_TOOLS:-/var/tmp/pib-bench-tools}
ZIP=$(cd .. && pwd)/shared/data/osv/debian-all-2025-02-12.zip
mkdir -p "$PIB_TEST_CACHE"
work=$(mktemp -d /var/tmp/pib-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
rows=$work/rows # figure, value, unit, compared with, other side, ratio (tab-separated)
began=$(date +%s)
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
others_before=$(top -bn1 -o %CPU | awk 'NR > 7 && $9 + 0 >= 10 { printf "%s%s (%s%%)", sep, $12, $9; sep = ", " }')

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$rows"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "–" }'; }
# Fields of the RESULT lines bench/build.sh and bench/scan.sh print.
result() { awk -v k="$2" '$1 == "RESULT" && $2 == k { print $3 }' "$1"; }

# --- Go benchmarks -----------------------------------------------------
# How each is run: -benchtime and -count. The end-to-end ones repeat
# inside one server (their median is one of their metrics) because
# starting a server with the image and the OSV data costs more than a
# build; the rest repeat RUNS times. Anything not listed runs RUNS times
# for Go's default second. PackUnpack runs once: unpacking the whole base
# image takes ~30 s here (it happens once per base image, not per build).
declare -A how=(
	[BenchmarkSubmitToSuccessful]="${RUNS}x 1"
	[Benchmark20Groups]="1x 1"
	[BenchmarkPrivateBuildToSuccessful]="3x 1"
	[BenchmarkListGroups10k]="300x 1"
	[BenchmarkRematch10k]="1x $RUNS"
	[BenchmarkScanDebian12]="1x $RUNS"
	[BenchmarkImportDebianZip]="1x 1"
	[BenchmarkDebianImportExport]="1x 3"
	[BenchmarkRun]="10x $RUNS"
	[BenchmarkPackUnpack]="1x 1"
)
# Figures the issue asks for, by benchmark: a missing one is a row that
# says so. BenchmarkRematch10k is S5's (internal/monitor).
expected=(BenchmarkSubmitToSuccessful Benchmark20Groups BenchmarkListGroups10k BenchmarkRematch10k BenchmarkScanDebian12)

log "listing benchmarks"
go test -list '^Benchmark' ./... 2>"$work/list.err" |
	awk '/^Benchmark/ { names[n++] = $1; next } /^ok/ { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }' > "$work/benchmarks" ||
	{ cat "$work/list.err" >&2; exit 1; }
[ -z "${BENCH:-}" ] || { grep -E " ${BENCH}" "$work/benchmarks" > "$work/b" || true; mv "$work/b" "$work/benchmarks"; }
# The sandbox's benchmark first: it bootstraps the debian-12 test image
# (internal/testenv) into the cache when it is not there yet, and the
# layer benchmark packs that image's root file system.
{ grep ' BenchmarkRun$' "$work/benchmarks" || true; grep -v ' BenchmarkRun$' "$work/benchmarks" || true; } > "$work/b"
mv "$work/b" "$work/benchmarks"

: > "$work/go.out"
while read -r pkg name; do
	read -r benchtime count <<< "${how[$name]:-1s $RUNS}"
	if [ -z "${PIB_BENCH_ROOTFS:-}" ] && [ -f "$PIB_TEST_CACHE/debian-12/done" ]; then
		read -r _ PIB_BENCH_ROOTFS < "$PIB_TEST_CACHE/debian-12/done"
		export PIB_BENCH_ROOTFS
	fi
	log "$name ($pkg, -benchtime $benchtime -count $count)"
	if ! go test -run '^$' -bench "^${name}\$" -benchtime "$benchtime" -count "$count" -timeout 60m "$pkg" < /dev/null > "$work/one.out" 2>&1; then
		tail -20 "$work/one.out" >&2
		row "${name#Benchmark}" "failed" "" "" "" "see go test -bench '^${name}\$' $pkg"
		continue
	fi
	if ! grep -E '^Benchmark' "$work/one.out" | tee -a "$work/go.out" >&2; then
		why=$(grep -m1 -A1 -- '--- SKIP' "$work/one.out" | tail -1 | sed 's/^[[:space:]]*//; s/|/\\|/g')
		row "${name#Benchmark}" "not measured" "" "" "" "skipped: ${why:-no result}"
	fi
done < "$work/benchmarks"

# One line per repeat: name-P  N  value unit  value unit …; the median of
# each (name, unit) over the repeats becomes a row. ns/op is shown in the
# largest unit that keeps it ≥ 1.
awk '{
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	for (i = 3; i + 1 <= NF; i += 2) if ($(i + 1) != "B/op" && $(i + 1) != "allocs/op") print name "\t" $(i + 1) "\t" $i
}' "$work/go.out" | sort -t$'\t' -k1,1 -k2,2 -k3,3g |
	awk -F'\t' '
	function flush() {
		if (n == 0) return
		m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		u = unit
		if (u == "ns/op") {
			if (m >= 1e9) { m /= 1e9; u = "s/op" } else if (m >= 1e6) { m /= 1e6; u = "ms/op" } else if (m >= 1e3) { m /= 1e3; u = "µs/op" }
		}
		printf "%s\t%s\t%s\t%d\n", key, (m >= 1e4 ? sprintf("%.0f", m) : sprintf("%.4g", m)), u, n
		n = 0
	}
	{ k = $1 "\t" $2; if (k != cur) { flush(); cur = k; key = $1; unit = $2 } v[++n] = $3 }
	END { flush() }' > "$work/go.all"
# A benchmark that reports its own median or p50 has its mean time per
# op (warm-up and setup amortised differently) left out: one figure each.
# A benchmark that reports its own s/op (Rematch10k) has ns/op, converted
# to s/op, twice: one row each.
awk -F'\t' 'NR == FNR { if ($3 ~ /median|p50/) own[$1] = 1; next } !(own[$1] && $3 ~ /s\/op$/) && !seen[$1 FS $3]++' "$work/go.all" "$work/go.all" > "$work/go.medians"

# Targets of issue 13, shown beside their figures (not measured: a goal).
target() { # figure unit → "compared with" and the target value
	case "$1 $2" in
	"SubmitToSuccessful median-s") echo "target (issue 13) ≤	0.75" ;;
	"20Groups builds/min") echo "target (issue 13) ≥	150" ;;
	"Rematch10k s/op") echo "target (issue 13) ≤	30" ;;
	esac
}
while IFS=$'\t' read -r fig val unit n; do
	t=$(target "$fig" "$unit")
	if [ -n "$t" ]; then
		row "$fig" "$val" "$unit" "${t%%	*}" "${t#*	}" "$(ratio "$val" "${t#*	}")"
	else
		row "$fig" "$val" "$unit" "" "" ""
	fi
done < "$work/go.medians"
for name in "${expected[@]}"; do
	grep -q " ${name}\$" "$work/benchmarks" && continue
	[ -n "${BENCH:-}" ] && continue
	row "${name#Benchmark}" "not measured" "" "" "" "no ${name} in this tree"
done

# --- pib build against the unshare+chroot floor ------------------------
# A data directory of its own with the tests' debian-12 image imported,
# so no build lands in the shared cache.
pib=$work/pib
go build -o "$pib" ./cmd/pib
tar=$PIB_TEST_CACHE/debian-12/debian-12.docker.tar
if [ -f "$tar" ]; then
	log "pib build against the floor (bench/build.sh $RUNS)"
	"$pib" --data "$work/build-data" image import "$tar" --alias debian-12 > /dev/null
	if PIB=$pib PIB_DATA=$work/build-data sh bench/build.sh "$RUNS" > "$work/build.out" 2>&1; then
		cat "$work/build.out" >&2
		for k in sh deb; do
			p=$(result "$work/build.out" "$k-pib") f=$(result "$work/build.out" "$k-floor")
			label=".sh (trivial)"; [ "$k" = deb ] && label=".deb (5 MB)"
			row "pib build, $label" "$p" "s" "unshare+chroot floor" "$f" "$(ratio "$p" "$f")"
		done
	else
		tail -20 "$work/build.out" >&2
		row "pib build" "failed" "" "unshare+chroot floor" "" "see bench/build.sh"
	fi
else
	row "pib build" "not measured" "" "unshare+chroot floor" "" "no $tar (the Go benchmarks bootstrap it)"
fi

# --- pib scan against osv-scanner --------------------------------------
osv=$(command -v osv-scanner || true)
if [ -z "$osv" ] && [ -x "$TOOLS/osv-scanner" ]; then
	osv=$TOOLS/osv-scanner
fi
if [ -z "$osv" ]; then
	log "installing osv-scanner into $TOOLS (module proxy; needs Go 1.27)"
	mkdir -p "$TOOLS"
	if GOTOOLCHAIN=go1.27.3 GOBIN=$TOOLS go install github.com/google/osv-scanner/v2/cmd/osv-scanner@latest >&2; then
		osv=$TOOLS/osv-scanner
	fi
fi
if [ -z "$osv" ]; then
	row "pib scan, debian-12" "not measured" "" "osv-scanner offline" "" "osv-scanner could not be installed"
elif [ ! -f "$ZIP" ]; then
	row "pib scan, debian-12" "not measured" "" "osv-scanner offline" "" "no $ZIP"
else
	log "pib scan against osv-scanner (bench/scan.sh, $RUNS runs each, alternated)"
	if PIB=$pib OSV_SCANNER=$osv RUNS=$RUNS SCAN_GO_BENCH=0 bash bench/scan.sh > "$work/scan.out" 2>&1; then
		cat "$work/scan.out" >&2
		p=$(result "$work/scan.out" pib-scan) o=$(result "$work/scan.out" osv-scan)
		row "pib scan, debian-12 (cold process)" "$p" "s" "osv-scanner $("$osv" --version 2>/dev/null | awk '/version/ { print $NF; exit }') offline" "$o" "$(ratio "$o" "$p")× faster"
		pi=$(result "$work/scan.out" pib-ids) oi=$(result "$work/scan.out" osv-ids) ci=$(result "$work/scan.out" common-ids)
		same="identical"
		[ "$pi" = "$ci" ] && [ "$oi" = "$ci" ] || same="differ: $((pi - ci)) only pib, $((oi - ci)) only osv-scanner"
		row "scan findings (source package, vulnerability ID)" "$pi" "pairs" "osv-scanner" "$oi" "$same"
	else
		tail -20 "$work/scan.out" >&2
		row "pib scan, debian-12" "failed" "" "osv-scanner offline" "" "see bench/scan.sh"
	fi
fi

# --- the table -----------------------------------------------------------
took=$(($(date +%s) - began))
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
	echo "# pib benchmarks"
	echo
	echo "- Date: $started_at (took $((took / 60)) min $((took % 60)) s; \`make bench\`, RUNS=$RUNS)"
	echo "- Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r), $(go version | awk '{ print $3 }')"
	echo "- Load average (1, 5, 15 min) at start: $load_before; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Other processes using ≥ 10% CPU at start: ${others_before:-none}"
	echo "- Values are medians over the repeats (a benchmark's own median metric where it has one); ratio = value ÷ other side, or how many times faster."
	echo
	echo "| figure | value | unit | compared with | other side | ratio |"
	echo "|---|---|---|---|---|---|"
	awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$rows"
} > "$OUT"
log "wrote $OUT (took ${took}s)"
cat "$OUT"
