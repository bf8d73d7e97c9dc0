#!/bin/sh
# Benchmark of pib build (issue 3): median wall time of a test build, from
# command start to the new image stored, for a trivial .sh installer and a
# ~5 MB .deb on debian-12, against the floor: the same installer run with a
# bare `unshare` + `chroot` on an already unpacked root file system.
#
# Usage (as root): bench/build.sh [RUNS]
#   PIB       pib binary (default: built from ./cmd/pib into a temp dir)
#   PIB_DATA  data directory holding a debian-12 image (default: a temp dir,
#             bootstrapped with `pib image bootstrap debian-12`, ~1 min)
set -eu
RUNS=${1:-11}
[ "$(id -u)" = 0 ] || { echo "bench/build.sh: needs root (namespaces, mounts)" >&2; exit 2; }
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /var/tmp/pib-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if [ -z "${PIB:-}" ]; then
	PIB=$TMP/pib
	go build -o "$PIB" ./cmd/pib
fi
DATA=${PIB_DATA:-$TMP/data}
if ! "$PIB" --data "$DATA" image inspect debian-12 >/dev/null 2>&1; then
	echo "bootstrapping debian-12 into $DATA …" >&2
	"$PIB" --data "$DATA" image bootstrap debian-12 >/dev/null
fi

# Installers.
printf '#!/bin/sh\necho hello > /etc/pib-bench\n' > "$TMP/trivial.sh"
mkdir -p "$TMP/deb/DEBIAN" "$TMP/deb/usr/share/pib-bench"
printf 'Package: pib-bench\nVersion: 1.0\nArchitecture: all\nMaintainer: bench <b@example.com>\nDescription: 5 MB of incompressible data\n' > "$TMP/deb/DEBIAN/control"
head -c 5000000 /dev/urandom > "$TMP/deb/usr/share/pib-bench/data"
dpkg-deb --root-owner-group -Zgzip --build "$TMP/deb" "$TMP/bench.deb" >/dev/null

# The floor's root file system: the same image, unpacked once.
"$PIB" --data "$DATA" image export debian-12 --format rootfs-tar -o "$TMP/rootfs.tar" >/dev/null
mkdir "$TMP/rootfs"
tar -C "$TMP/rootfs" -xf "$TMP/rootfs.tar"
cp "$TMP/bench.deb" "$TMP/rootfs/tmp/bench.deb"

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.3f", m/1e9}'; }
measure() { # label, command…
	label=$1; shift
	"$@" >/dev/null 2>&1 || { echo "$label: command failed: $*" >&2; "$@" >&2 || true; exit 1; }
	for _ in $(seq "$RUNS"); do
		t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
		echo $((t1 - t0))
	done | median > "$TMP/$label"
	printf '%-12s median %ss over %s runs\n' "$label" "$(cat "$TMP/$label")" "$RUNS"
	echo "RESULT $label $(cat "$TMP/$label")" # for bench/run.sh
}
FLOOR="unshare -m -n -p -f -u -i --kill-child chroot $TMP/rootfs"
measure sh-pib   "$PIB" --data "$DATA" build --base debian-12 --installer "$TMP/trivial.sh"
measure sh-floor $FLOOR /bin/sh -c 'echo hello > /etc/pib-bench'
measure deb-pib  "$PIB" --data "$DATA" build --base debian-12 --installer "$TMP/bench.deb"
measure deb-floor $FLOOR dpkg -i /tmp/bench.deb
awk -v a="$(cat "$TMP/sh-pib")" -v b="$(cat "$TMP/sh-floor")" -v c="$(cat "$TMP/deb-pib")" -v d="$(cat "$TMP/deb-floor")" \
	'BEGIN { printf "overhead over the floor: .sh %+.3fs, .deb %+.3fs (target ≤ 0.5s)\n", a-b, c-d }'
