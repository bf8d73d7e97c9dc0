#!/bin/sh
# Passes every rule, touching only its own directory (the sandbox's ok.sh
# writes /opt and /etc, which on the test machine are the host's).
set -e
echo "installing ok"
echo "a warning" >&2
printf 'hello\n' > ./installed
test -f ./ok-here.sh
echo done
