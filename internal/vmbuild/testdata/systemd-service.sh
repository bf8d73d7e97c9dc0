#!/bin/sh
# Installs a tiny systemd service, enables and starts it, and waits until
# systemd says it is active: needs a running systemd (a vm build).
set -e
cat > /usr/local/bin/pib-hello-daemon <<'SH'
#!/bin/sh
while :; do sleep 3600; done
SH
chmod 755 /usr/local/bin/pib-hello-daemon
cat > /etc/systemd/system/pib-hello.service <<'UNIT'
[Unit]
Description=pib test service

[Service]
ExecStart=/usr/local/bin/pib-hello-daemon

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now pib-hello.service
for i in $(seq 50); do
	if systemctl is-active --quiet pib-hello.service; then
		echo "pib-hello.service is active"
		exit 0
	fi
	sleep 0.2
done
echo "pib-hello.service did not become active" >&2
exit 1
