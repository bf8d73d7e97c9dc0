#!/bin/sh
# Breaks I5: reboot(2) with LINUX_REBOOT_CMD_POWER_OFF.
perl -e 'syscall(169, 0xfee1dead, 672274793, 0x4321fedc, 0) or die "reboot: $!"'
echo "still here"
