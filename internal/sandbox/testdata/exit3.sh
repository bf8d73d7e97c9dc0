#!/bin/sh
# Breaks I4: a non-zero exit status.
echo "about to fail"
exit 3
