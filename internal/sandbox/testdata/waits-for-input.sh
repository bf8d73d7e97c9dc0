#!/bin/sh
# Breaks I1/I7: waits for an answer that never comes.
mkfifo /tmp/answer
exec 3<>/tmp/answer
echo "Continue? [y/N]"
read reply <&3
