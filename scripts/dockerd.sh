#!/usr/bin/env bash
# Makes a Docker engine answer on this machine, for the docker runtime's
# tests (internal/runtime/docker). Idempotent. Installs busybox-static if
# /bin/busybox is missing (the tests build their workspace image from it).
# Does nothing more when `docker info` already answers. Otherwise installs
# Debian's docker.io if dockerd is missing, starts `dockerd --iptables=false
# --live-restore` in the background (no registry and no iptables here: see
# ../shared/MACHINE-NOTES.md) and waits until the engine answers.
# --live-restore keeps workspace containers running while dockerd itself
# restarts (Dev8's workspaces then stay RUNNING; without it they go to ERROR,
# see internal/runtime/docker TestDockerdRestart).
#
#   DOCKERD_LOG      dockerd's log file (default /tmp/dockerd.log)
#   DOCKERD_TIMEOUT  seconds to wait for the engine (default 60)
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/dockerd.log}
timeout=${DOCKERD_TIMEOUT:-60}

apt_updated=
install() {
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "$apt_updated" ]; then
		apt-get update -qq
		apt_updated=1
	fi
	apt-get install -y -qq "$@" >/dev/null
}

if [ ! -x /bin/busybox ]; then
	echo "dockerd.sh: installing busybox-static"
	install busybox-static
fi

if docker info >/dev/null 2>&1; then
	echo "dockerd.sh: Docker engine already answers"
	exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
	echo "dockerd.sh: installing docker.io"
	install docker.io
fi

echo "dockerd.sh: starting dockerd --iptables=false --live-restore (log: $log)"
# setsid: the engine outlives this script and its caller's process group.
setsid dockerd --iptables=false --live-restore >>"$log" 2>&1 </dev/null &
pid=$!

deadline=$((SECONDS + timeout))
until docker info >/dev/null 2>&1; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "dockerd.sh: dockerd exited; last lines of $log:" >&2
		tail -n 30 "$log" >&2
		exit 1
	fi
	if ((SECONDS >= deadline)); then
		echo "dockerd.sh: no answer from dockerd after ${timeout}s; last lines of $log:" >&2
		tail -n 30 "$log" >&2
		exit 1
	fi
	sleep 0.2
done
echo "dockerd.sh: Docker engine answers (dockerd pid $pid)"
