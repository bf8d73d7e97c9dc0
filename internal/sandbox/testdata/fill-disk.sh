#!/bin/sh
# Fills the disk.
dd if=/dev/zero of=/var/big bs=1M count=100000
exit 0
