#!/usr/bin/env bash
# Proves that the README's two commands alone set up a truly fresh Debian 12
# machine: it debootstraps a minimal bookworm (with only git and make added,
# which cloning this repository and running `make` presuppose), clones this
# repository into it and runs `make demo`, then `make test`, inside it as
# root. Nothing pib needs is there before: no Go, no debootstrap, skopeo,
# nftables, PostgreSQL or Chromium.
#
# Run by hand, as root, on a Debian machine with network access to Debian's
# mirror and the Go module proxy (not in CI: it takes tens of minutes):
#
#   scripts/fresh-machine-check.sh            # the repository's HEAD commit
#   KEEP_LOGS=/some/dir scripts/fresh-machine-check.sh
#   BASE_TAR=/path/x.tar …      where the pristine debootstrap is kept for a day
#
# The machine is a root file system with /proc, /sys (and so the cgroup file
# system), /dev, /dev/shm and a fresh /run mounted, entered with pivot_root
# in a mount namespace of its own (a chroot would not do: see inside()), in a network namespace of its own
# whose traffic the host masquerades (nftables), with the host's resolver.
# Its own network namespace matters: the host's PostgreSQL on 127.0.0.1:5432
# is not visible inside, so `make test` must install and start its own, as
# on a fresh machine. The shared folder next to the repository (../shared,
# for the OSV data `make demo` loads) is mounted read-only at the same place
# relative to the clone.
#
# Everything is removed afterwards, also on failure or Ctrl-C: the chroot's
# processes, its mounts, the network namespace, the nftables table, the
# temp dir. Each command's log is kept in $KEEP_LOGS (default
# /var/tmp/pib-fresh-check-logs). The summary at the end gives each
# command's exit status and duration.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "fresh-machine-check: run as root" >&2; exit 1; }
for c in debootstrap git nft ip nsenter unshare flock; do
	command -v "$c" >/dev/null || { echo "fresh-machine-check: needs $c on the host (apt-get install debootstrap git nftables iproute2 util-linux)" >&2; exit 1; }
done

# One check at a time: two would share the log folder and the IP forwarding
# setting each restores.
exec 9>/var/tmp/pib-fresh-check.lock
flock -n 9 || { echo "fresh-machine-check: another check is running (lock /var/tmp/pib-fresh-check.lock)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$repo/.." && pwd)/shared
logs=${KEEP_LOGS:-/var/tmp/pib-fresh-check-logs}
mkdir -p "$logs"
work=$(mktemp -d /var/tmp/pib-fresh.XXXXXX)
root=$work/root
ns=pibfresh$$
veth_host=vh$$
veth_chroot=vc$$
subnet=10.213.$(($$ % 250)).0
host_ip=${subnet%.0}.1
chroot_ip=${subnet%.0}.2
forward_was=$(sysctl -n net.ipv4.ip_forward)

cleanup() {
	set +e
	# Processes started inside (the demo's pib serve, PostgreSQL, tests).
	for _ in 1 2 3; do
		local left=0
		for p in /proc/[0-9]*; do
			if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
				kill -9 "${p#/proc/}" 2>/dev/null && left=1
			fi
		done
		[ $left = 0 ] && break
		sleep 1
	done
	# Mounts under the chroot, deepest first.
	awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	nft delete table ip "$ns" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	ip link del "$veth_host" 2>/dev/null
	sysctl -qw net.ipv4.ip_forward="$forward_was"
	if awk -v r="$root" 'index($5, r) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		echo "fresh-machine-check: mounts are left under $root; not removing $work" >&2
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT INT TERM

say() { echo "== $*" >&2; }

mirror=$(sed -n 's/^URIs:[[:space:]]*\(http[^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

declare -a names statuses durations
run_step() { # name, then the command
	local name=$1 start rc
	shift
	say "$name (log: $logs/$name.log)"
	start=$(date +%s)
	set +e
	"$@" >"$logs/$name.log" 2>&1
	rc=$?
	set -e
	names+=("$name")
	statuses+=("$rc")
	durations+=("$(($(date +%s) - start))")
	tail -5 "$logs/$name.log" >&2
	return $rc
}

summary() {
	echo
	printf '%-24s %-6s %s\n' STEP EXIT SECONDS
	for i in "${!names[@]}"; do
		printf '%-24s %-6s %s\n' "${names[$i]}" "${statuses[$i]}" "${durations[$i]}"
	done
}

# A pristine debootstrap is kept as a tarball for a day ($BASE_TAR), so that
# a second check soon after skips the download; it is as fresh as the first.
base_tar=${BASE_TAR:-/var/tmp/pib-fresh-bookworm.tar}
debootstrap_machine() {
	if [ -f "$base_tar" ] && [ -n "$(find "$base_tar" -mmin -1440)" ]; then
		echo "unpacking the pristine bookworm of $(date -r "$base_tar") from $base_tar"
		mkdir -p "$root" && tar -C "$root" -xpf "$base_tar"
		return
	fi
	debootstrap --variant=minbase --include=git,make,ca-certificates bookworm "$root" "$mirror"
	tar -C "$root" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
}
run_step debootstrap debootstrap_machine || { summary; exit 1; }

# The repository as a fresh clone of its committed state.
git clone -q "$repo" "$root/root/pib"
git -C "$root/root/pib" log --oneline -1 >&2
mkdir -p "$root/root/shared"
mount --bind -o ro "$shared" "$root/root/shared"
mount -o remount,bind,ro "$root/root/shared"

mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Trust what the host trusts: a network that inspects TLS (as this
# workplace's does) has its own root certificate in the host's bundle, which
# a fresh machine on that network would be given too. Certificates of the
# host's bundle missing from the chroot's go to its
# /usr/local/share/ca-certificates, where update-ca-certificates keeps them.
extra=0
mkdir -p "$work/certs"
awk -v dir="$work/certs" '/BEGIN CERTIFICATE/ { n++ } n { print > (dir "/" n ".crt") }' /etc/ssl/certs/ca-certificates.crt
for c in "$work"/certs/*.crt; do
	key=$(sed -n 2p "$c")
	if ! grep -qF -- "$key" "$root/etc/ssl/certs/ca-certificates.crt"; then
		cp "$c" "$root/usr/local/share/ca-certificates/pib-host-$(basename "$c")"
		extra=$((extra + 1))
	fi
done
if [ $extra -gt 0 ]; then
	say "adding the host's $extra extra root certificate(s) to the chroot's trust store"
	chroot "$root" update-ca-certificates >/dev/null
fi

# Its own network: a veth pair, masqueraded by the host.
ip netns add "$ns"
ip link add "$veth_host" type veth peer name "$veth_chroot"
ip link set "$veth_chroot" netns "$ns"
ip addr add "$host_ip/30" dev "$veth_host"
ip link set "$veth_host" up
ip -n "$ns" addr add "$chroot_ip/30" dev "$veth_chroot"
ip -n "$ns" link set "$veth_chroot" up
ip -n "$ns" link set lo up
ip -n "$ns" route add default via "$host_ip"
sysctl -qw net.ipv4.ip_forward=1
nft -f - <<EOF
table ip $ns {
	chain post {
		type nat hook postrouting priority srcnat;
		ip saddr $subnet/30 oifname != "$veth_host" masquerade
	}
	chain forwarding {
		type filter hook forward priority filter;
		iifname "$veth_host" accept
		oifname "$veth_host" ct state established,related accept
	}
}
EOF

# A command line run inside the machine, in the clone, as root. Not a plain
# chroot: the kernel refuses user namespaces to a chrooted process (clone(2),
# EPERM when the caller's root is not its mount namespace's root), and pib's
# sandbox needs them. So each command gets a private mount namespace whose
# root is the machine's, by pivot_root, as a container runtime does.
inside() {
	nsenter --net="/run/netns/$ns" unshare --mount --propagation private --fork -- /bin/sh -c '
		set -e
		mount --rbind "$1" "$1"
		cd "$1"
		mkdir -p .host
		pivot_root . .host
		umount -l /.host
		rmdir /.host
		exec /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			bash -c "cd /root/pib && $2"' sh "$root" "$1"
}

demo_rc=0 test_rc=0
run_step make-demo inside 'make demo' || demo_rc=$?
# make demo leaves its server running; a fresh machine running make test
# next would too, but stop it so the two are measured apart.
inside 'test -f pib-data/serve.pid && kill $(cat pib-data/serve.pid) 2>/dev/null; true' || true
run_step make-test inside 'make test' || test_rc=$?
if [ $test_rc != 0 ]; then
	say "tests that failed inside the chroot:"
	grep -E '^(--- FAIL|FAIL|ok )' "$logs/make-test.log" | grep -v '^ok' >&2 || true
fi
summary | tee "$logs/summary.txt"
[ $demo_rc = 0 ] && [ $test_rc = 0 ]
