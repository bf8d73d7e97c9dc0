#!/usr/bin/env bash
# Installs what pib needs on a fresh Debian machine (run as root).
#   scripts/deps.sh          what `make demo` needs: Go (from bookworm-backports on Debian 12 when no Go
#                            1.21 or newer is found), debootstrap, skopeo, zstd, nftables, and for disk
#                            exports and boot tests fdisk, dosfstools, mtools, GRUB (BIOS, UEFI) and QEMU
#   scripts/deps.sh test     plus what the tests need: LibreOffice Calc, Chromium, a PostgreSQL answering on
#                            127.0.0.1:5432 with trust auth and a database "test"
set -euo pipefail

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }

export PATH="/usr/local/go/bin:$PATH"
have debootstrap || need_pkgs+=(debootstrap)
have skopeo || need_pkgs+=(skopeo)
have zstd || need_pkgs+=(zstd)
have nft || need_pkgs+=(nftables)
have git || need_pkgs+=(git)
have make || need_pkgs+=(make)
have curl || need_pkgs+=(curl)
have bc || need_pkgs+=(bc)
# bootable disk exports (pib image export --format raw|qcow2) and boot tests (V1–V3)
have sfdisk || need_pkgs+=(fdisk)
have mkfs.vfat || need_pkgs+=(dosfstools)
have mcopy || need_pkgs+=(mtools)
have qemu-img || need_pkgs+=(qemu-utils)
have qemu-system-x86_64 || need_pkgs+=(qemu-system-x86)
[ -f /usr/lib/grub/i386-pc/kernel.img ] || need_pkgs+=(grub-pc-bin)
[ -f /usr/lib/grub/x86_64-efi/kernel.img ] || need_pkgs+=(grub-efi-amd64-bin)
if [ "${1:-}" = test ]; then
	have gcc || need_pkgs+=(gcc)
	have pg_isready || need_pkgs+=(postgresql-client)
	have dpkg-deb || need_pkgs+=(dpkg-dev)
	# the load form tests (internal/loadform) check the form in real spreadsheet software
	have soffice || need_pkgs+=(libreoffice-calc-nogui)
	# the portal's tests (internal/web) drive Debian's chromium with chromedp
	have chromium || need_pkgs+=(chromium)
	# the disk export test boots with UEFI too (internal/disk)
	[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || need_pkgs+=(ovmf)
fi

apt_install() {
	if [ "$(id -u)" != 0 ]; then
		echo "deps: need root to install $*; run as root (sudo make …)" >&2
		exit 1
	fi
	echo "deps: installing $*" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if [ ${#need_pkgs[@]} -gt 0 ]; then
	apt_install "${need_pkgs[@]}"
fi

# Go: go.mod names the exact version, and any Go >= 1.21 fetches that one
# from the module proxy by itself (GOTOOLCHAIN=auto, which the Makefile
# sets). Debian 12's own golang-go is 1.19, too old for that; its
# bookworm-backports suite carries golang-go 1.23, so on Debian 12 that is
# what gets installed. Idempotent: once a Go >= 1.21 is found, nothing
# here runs again.
go_ok() {
	local v
	# From /: inside the repository an older Go would refuse go.mod's version.
	v=$(cd / && GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed 's/^go//')
	case "$v" in
	"" | 1.[0-9] | 1.[0-9].* | 1.1[0-9] | 1.1[0-9].* | 1.20 | 1.20.*) return 1 ;;
	esac
}
backports=/etc/apt/sources.list.d/pib-bookworm-backports.sources
if ! go_ok; then
	# shellcheck disable=SC1091
	. /etc/os-release
	if [ "${ID:-}" != debian ] || [ "${VERSION_CODENAME:-}" != bookworm ]; then
		echo "deps: pib needs Go 1.21 or newer to build (that Go then fetches the exact version go.mod names)." >&2
		echo "      On ${PRETTY_NAME:-this system} install Go from https://go.dev/doc/install into /usr/local/go," >&2
		echo "      or your distribution's golang package if it is 1.21 or newer, then run this again." >&2
		exit 1
	fi
	if [ ! -f "$backports" ]; then
		# The same mirror the machine's Debian sources already use.
		mirror=$(sed -n 's/^URIs:[[:space:]]*\(http[^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
		[ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\(http[^ ]*\/debian\)\/\{0,1\}[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1 || true)
		[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
		echo "deps: no Go 1.21 or newer found: adding Debian's bookworm-backports suite ($backports, mirror $mirror) for golang-go 1.23" >&2
		[ "$(id -u)" = 0 ] || { echo "deps: need root to add $backports; run as root (sudo make …)" >&2; exit 1; }
		printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" >"$backports"
	fi
	apt_install -t bookworm-backports golang-go
	hash -r
	go_ok || { echo "deps: golang-go from bookworm-backports is installed but $(command -v go) is not Go 1.21 or newer; remove the older Go from PATH and run this again" >&2; exit 1; }
fi

if [ "${1:-}" = test ]; then
	if ! pg_isready -q -h 127.0.0.1 -p 5432; then
		apt_install postgresql
		ver=$(ls /etc/postgresql | sort -V | tail -1)
		hba=/etc/postgresql/$ver/main/pg_hba.conf
		# Tests connect over TCP as user postgres without a password.
		grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
		pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || pg_ctlcluster "$ver" main restart
		for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	fi
	psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 ||
		psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
	# The fault suite (cmd/pib TestFaults) restarts a PostgreSQL of its own,
	# made with initdb: Debian's server package, even when the server on
	# 5432 is another one.
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_install postgresql
fi
