#!/usr/bin/env bash
# Install what the dashboard's browser test (tests/e2e/embedded/test_dashboard.py) needs:
# Debian's headless-capable Chromium. Debian/Ubuntu; CI runs it as root.
#
# Idempotent: does nothing when `chromium` is already installed. About 20 s on a fresh
# machine with the package mirror close by.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium is already installed: nothing to do"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "installing packages needs root: run sudo $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium
chromium --version
