#!/bin/sh
# Passes every rule: writes, modifies and deletes files, prints to both streams.
set -e
echo "installing ok"
echo "a warning" >&2
mkdir -p /opt/ok
printf 'hello\n' > /opt/ok/file
echo "# ok" >> /etc/issue
rm -f /etc/motd
test -f ./ok.sh
test -f ./extra.txt
echo done
