#!/usr/bin/env bash
# pib's main job on its embedded defaults (run by `make demo`): a Debian 12
# base image, vulnerability data, the service, a demo seller and a small
# real package group test-built and scanned from submit to its final state.
# It leaves the server running.
set -euo pipefail
cd "$(dirname "$0")/.."
PIB="$PWD/pib"
export PIB_DATA="${PIB_DATA:-$PWD/pib-data}"
LISTEN="${PIB_LISTEN:-127.0.0.1:8080}"
SERVER="http://$LISTEN"
# Image and vulndb steps work on the local data directory; client commands
# get the server from step 3 on.
unset PIB_TOKEN PIB_SERVER
mkdir -p "$PIB_DATA"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Base image: debian-12"
if ! "$PIB" image inspect debian-12 >/dev/null 2>&1; then
	"$PIB" image bootstrap debian-12
fi
"$PIB" image ls

step "Vulnerability data (OSV)"
if "$PIB" vulndb status 2>/dev/null | grep -q '^Debian:12 '; then
	echo "already loaded:"
	"$PIB" vulndb status | tail -1
elif [ -n "${PIB_OSV_ZIP:-}" ] && [ -f "$PIB_OSV_ZIP" ]; then
	"$PIB" vulndb import "$PIB_OSV_ZIP"
else
	"$PIB" vulndb update --ecosystem Debian
fi

export PIB_SERVER="$SERVER"
step "Service on $PIB_SERVER"
if curl -fsS "$PIB_SERVER/healthz" >/dev/null 2>&1; then
	echo "a pib server already answers there; using it"
else
	nohup "$PIB" serve --listen "$LISTEN" >>"$PIB_DATA/serve.log" 2>&1 &
	echo $! >"$PIB_DATA/serve.pid"
	for _ in $(seq 50); do
		curl -fsS "$PIB_SERVER/healthz" >/dev/null 2>&1 && break
		sleep 0.2
	done
	curl -fsS "$PIB_SERVER/healthz" >/dev/null || { tail -20 "$PIB_DATA/serve.log"; exit 1; }
	echo "pib serve is running (pid $(cat "$PIB_DATA/serve.pid"), log $PIB_DATA/serve.log)"
fi
OPERATOR="$(cat "$PIB_DATA/operator.token")"
PIB_TOKEN="$OPERATOR" "$PIB" os add debian-12 --image debian-12

step "A demo seller"
# A token kept from an earlier run may belong to a database since reset.
if [ -s "$PIB_DATA/demo-seller.token" ] && ! PIB_TOKEN="$(cat "$PIB_DATA/demo-seller.token")" "$PIB" packages ls >/dev/null 2>&1; then
	rm -f "$PIB_DATA/demo-seller.token"
fi
if [ ! -s "$PIB_DATA/demo-seller.token" ]; then
	PIB_TOKEN="$OPERATOR" "$PIB" account create --role seller demo-seller >"$PIB_DATA/demo-seller.token.tmp" 2>/dev/null ||
		PIB_TOKEN="$OPERATOR" "$PIB" account create --role seller "demo-seller-$(date +%s)" >"$PIB_DATA/demo-seller.token.tmp"
	mv "$PIB_DATA/demo-seller.token.tmp" "$PIB_DATA/demo-seller.token"
	chmod 600 "$PIB_DATA/demo-seller.token"
fi
export PIB_TOKEN="$(cat "$PIB_DATA/demo-seller.token")"
echo "the demo seller's token is in $PIB_DATA/demo-seller.token"

step "A package group: a .deb built here and an installer script"
work="$PIB_DATA/demo"
rm -rf "$work/hello-pib" && mkdir -p "$work/hello-pib/DEBIAN" "$work/hello-pib/usr/bin"
cat >"$work/hello-pib/DEBIAN/control" <<'CONTROL'
Package: hello-pib
Version: 1.0
Architecture: all
Maintainer: pib demo <demo@example.invalid>
Description: greeting installed by the pib demo
CONTROL
printf '#!/bin/sh\necho "hello from a pib-tested package"\n' >"$work/hello-pib/usr/bin/hello-pib"
chmod 755 "$work/hello-pib/usr/bin/hello-pib"
dpkg-deb --build --root-owner-group "$work/hello-pib" "$work/hello-pib_1.0_all.deb" >/dev/null
cat >"$work/install.sh" <<'INSTALL'
#!/bin/sh
# Installs hello-pib unattended, offline, without reboot (rules I1–I8).
set -e
dpkg -i hello-pib_1.0_all.deb
hello-pib
INSTALL
# N2: a name is used once per seller, forever, so each run takes a new revision.
group="HelloPib1_0Linux$(date +%s)"
"$PIB" groups create --name "$group" --os debian-12 --installer "$work/install.sh" --package "$work/hello-pib_1.0_all.deb"

step "Submit and follow it to its final state"
start=$(date +%s.%N)
"$PIB" groups submit "$group" --watch
printf 'submit → final state: %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo 0)"

build=$("$PIB" status "$group" --json | sed -n 's/.*"id": "\(b-[0-9a-f]*\)".*/\1/p' | head -1)
final=$("$PIB" status "$group" --json | sed -n 's/.*"state": "\([^"]*\)".*/\1/p' | head -1)
step "Where to look next"
cat <<NEXT
  The server keeps running: $PIB_SERVER (stop it with: kill \$(cat $PIB_DATA/serve.pid))
  As the demo seller:  export PIB_SERVER=$PIB_SERVER PIB_TOKEN=\$(cat $PIB_DATA/demo-seller.token)
    ./pib status                       the scan status view of all your groups
    ./pib builds log $build       the installer's output, with timestamps
    ./pib builds report $build    findings, vulnerabilities, policy checks, changed files
    ./pib builds sbom $build      the image's SBOM (CycloneDX; --format spdx-json)
  As the operator:     PIB_TOKEN=\$(cat $PIB_DATA/operator.token) ./pib investigations ls
  The API:             $PIB_SERVER/v1/openapi.json   metrics: $PIB_SERVER/metrics (operator token)
  The portal:          $PIB_SERVER/ (sign in with a token, e.g. the one in $PIB_DATA/demo-seller.token)
NEXT

# The demo proves a group builds: any other end is a failure of the demo.
if [ "$final" != Successful ]; then
	echo "demo: the group ended $final, not Successful. Its report says why: PIB_TOKEN=\$(cat $PIB_DATA/demo-seller.token) ./pib builds report $build; an Investigating build is the platform's fault: see the operator's investigation queue and $PIB_DATA/serve.log" >&2
	exit 1
fi
