#!/bin/sh
# Allocates far beyond the memory limit.
perl -e '$x = "x" x (2 * 1024 * 1024 * 1024); print length($x)'
