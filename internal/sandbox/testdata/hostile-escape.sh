#!/bin/sh
# Tries to get out. Every attempt must fail; the script reports which did not.
escaped=0
try() { if sh -c "$2" >/dev/null 2>&1; then echo "ESCAPED: $1"; escaped=1; else echo "contained: $1"; fi; }
try mount 'mount -t tmpfs none /mnt'
try remount-root 'mount -o remount,rw /'
try sysrq 'echo h > /proc/sysrq-trigger'
try proc-sys 'echo 1 > /proc/sys/kernel/sysrq'
try proc1-root 'ls /proc/1/root/'
try proc1-exe 'cat /proc/1/exe > /dev/null'
try init-module "perl -e 'my \$p = \"\"; syscall(313, 0, \$p, 0) == 0 or exit 1'"
try unshare "perl -e 'syscall(272, 0x10000000) == 0 or exit 1'"
try chroot-out "perl -e 'mkdir \"/tmp/x\"; chroot \"/tmp/x\" or exit 1; chdir \"../../../../..\"; chroot \".\" or exit 1; -e \"/proc/1/root/..\" or exit 1; opendir(D, \"/var/tmp\") or exit 1; exit(grep(/^pib-build-/, readdir D) ? 0 : 1)'"
try mknod-disk 'mknod /tmp/vda b 253 0 && head -c 512 /tmp/vda'
try settime 'date -s 2001-01-01'
try hostname 'hostname evil'
for fd in 3 4 5 6 7 8 9; do
	if { true >&$fd; } 2>/dev/null; then echo "ESCAPED: inherited fd $fd"; escaped=1; fi
done
# Signals to the sandbox's init must not end the build as a platform error.
for sig in QUIT ABRT SEGV USR1 USR2 TERM HUP INT ALRM TRAP SYS; do kill -s $sig 1 2>/dev/null; done
sleep 0.2
exit $escaped
