#!/bin/sh
# Breaks I6: adds routes (v4, v6), an address, a rule and a link; writes network configuration.
ip route add 10.99.0.0/16 dev lo
ip addr add 10.1.2.3/32 dev lo
ip -6 route add 2001:db8:99::/48 dev lo
ip rule add from 10.1.2.3 table 100
ip link add pibdummy0 type dummy || ip link set lo mtu 1400
mkdir -p /etc/network
printf 'auto eth1\niface eth1 inet dhcp\n' >> /etc/network/interfaces
echo 'net.ipv4.ip_forward=1' > /etc/sysctl.d/99-forward.conf
echo 'nameserver 8.8.8.8' > /etc/resolv.conf
exit 0
