#!/bin/sh
# Breaks I5: the usual command.
echo "rebooting to finish the install"
reboot
echo "still here"
