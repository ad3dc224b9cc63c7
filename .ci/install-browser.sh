#!/usr/bin/env bash
# What the portal's browser test needs (tests/integration/test_portal_browser.py): Debian's
# Chromium at /usr/bin/chromium, driven by Playwright for Python (a dev dependency that
# `make test` installs; Playwright's own browser download is never used). Idempotent.
set -euo pipefail

if dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-browser: apt-get not found; install Chromium by hand (/usr/bin/chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium
