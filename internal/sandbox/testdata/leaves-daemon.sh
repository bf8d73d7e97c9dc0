#!/bin/sh
# Breaks I3: starts a daemon and returns without waiting for it.
sleep 1000 >/dev/null 2>&1 &
echo "started daemon $!"
exit 0
