#!/usr/bin/env bash
# Install what the network-fault suite (tests/e2e/network) needs: iproute2 (`ip netns`, `tc`)
# and nftables (partitions and packet loss). Debian/Ubuntu; CI runs it as root.
#
# Idempotent: does nothing when `ip`, `tc` and `nft` are already installed. The kernel must
# have network namespaces, veth, bridges and nf_tables; netem is used when it is there
# (docs/reliability.md, "The test network", says what stands in for it otherwise).
set -euo pipefail

PATH="$PATH:/usr/sbin:/sbin"
if command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 \
    && command -v nft >/dev/null 2>&1; then
    echo "ip, tc and nft are already installed: nothing to do"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "installing packages needs root: run sudo $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends iproute2 nftables
nft --version
