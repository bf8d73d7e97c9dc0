#!/bin/sh
# Breaks I5.
systemctl reboot
