#!/bin/sh
# A hostile installer: it stops the guest agent that runs it (comm "pib"),
# so the guest can no longer enforce the time limit, then waits. Only the
# host can end this build (I7).
for d in /proc/[0-9]*; do
	if [ "$(cat "$d/comm" 2>/dev/null)" = pib ]; then
		kill -STOP "${d#/proc/}" && echo "stopped the agent, pid ${d#/proc/}"
	fi
done
sleep 600
