#!/bin/sh
# Breaks I2: tries to download a file and to look a name up.
bash -c 'exec 3<>/dev/tcp/downloads.example.com/80; printf "GET /pkg.tar.gz HTTP/1.0\r\nHost: downloads.example.com\r\n\r\n" >&3; cat <&3' || true
getent hosts license.example.org || true
# A literal address and a DNS server of its own.
bash -c 'exec 3<>/dev/tcp/203.0.113.7/443' || true
bash -c 'exec 3<>/dev/tcp/2001:db8::7/8443' || true
perl -MSocket -e 'socket(S, PF_INET, SOCK_DGRAM, 0); send(S, pack("n6", 7, 256, 1, 0, 0, 0) . "\x07updates\x07example\x03net\x00\x00\x01\x00\x01", 0, sockaddr_in(53, inet_aton("8.8.8.8"))) or die "send: $!"' || true
exit 0
