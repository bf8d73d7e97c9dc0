#!/usr/bin/env bash
# Installs what pib needs on a fresh Debian machine (run as root).
#   scripts/deps.sh          what `make demo` needs: Go, debootstrap, skopeo, zstd, nftables
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
have go || need_pkgs+=(golang-go)
have git || need_pkgs+=(git)
have make || need_pkgs+=(make)
have curl || need_pkgs+=(curl)
have bc || need_pkgs+=(bc)
if [ "${1:-}" = test ]; then
	have gcc || need_pkgs+=(gcc)
	have pg_isready || need_pkgs+=(postgresql-client)
	have dpkg-deb || need_pkgs+=(dpkg-dev)
	# the load form tests (internal/loadform) check the form in real spreadsheet software
	have soffice || need_pkgs+=(libreoffice-calc-nogui)
	# the portal's tests (internal/web) drive Debian's chromium with chromedp
	have chromium || need_pkgs+=(chromium)
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

# go.mod names the Go version; a Go ≥ 1.21 fetches it from the module proxy
# on first use (GOTOOLCHAIN=auto). Debian 12's own golang-go is 1.19: too old.
gov=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
case "$gov" in
1.1[0-9]* | 1.20* | "")
	echo "deps: Go $gov is too old to build pib (it needs the Go named in go.mod)." >&2
	echo "      Install Go 1.21 or newer into /usr/local/go (https://go.dev/doc/install), then run this again." >&2
	exit 1
	;;
esac

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
fi
