#!/usr/bin/env bash
# Install MariaDB's server and client for the storage tests (Debian/Ubuntu; CI runs it as root).
#
# Idempotent: does nothing when mariadbd is already installed. The tests start their own
# private server (own data directory, socket and port), so the package's system service is
# neither needed nor wanted: it is kept from starting during the install, and a system server
# that runs anyway does not matter.
set -euo pipefail

if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
    echo "mariadbd is already installed: nothing to do"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "installing packages needs root: run sudo $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# invoke-rc.d asks policy-rc.d whether to start services; 101 means "no". Only add one when
# there is none, and remove it again afterwards.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

apt-get update
apt-get install -y --no-install-recommends mariadb-server mariadb-client
PATH="$PATH:/usr/sbin" mariadbd --version
