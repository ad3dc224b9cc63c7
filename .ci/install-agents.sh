#!/usr/bin/env bash
# What the monitoring-agent integration tests need (tests/integration/test_agents_*.py):
# Debian's Prometheus server and blackbox exporter. Idempotent: installs only what is missing,
# and never lets the packages start their system services (the tests run their own).
set -euo pipefail

packages=(prometheus prometheus-blackbox-exporter)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "install-agents: apt-get not found; install ${missing[*]} by hand" >&2
    exit 1
fi

# Keep the packages' services from starting on install (a container has no init system to
# stop them again); only when nothing else already decides this.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
