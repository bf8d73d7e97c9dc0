#!/bin/sh
# Breaks I6 in the guest's network state only: the sandbox's routes.sh
# also writes /etc network files, which on the test machine are the
# host's (the VM backend finds those in the disk's difference instead).
ip route add 10.99.0.0/16 dev lo
ip addr add 10.1.2.3/32 dev lo
ip -6 route add 2001:db8:99::/48 dev lo
ip rule add from 10.1.2.3 table 100
ip link add pibdummy0 type dummy || ip link set lo mtu 1400
nft add table inet sneaky
echo 'nameserver 8.8.8.8' > /etc/resolv.conf
exit 0
