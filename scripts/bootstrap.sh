#!/usr/bin/env bash
# Installs what StateMesh needs to build, test, fuzz and benchmark on a fresh
# Debian 12 machine with the Swift toolchain. Idempotent: installs only what is
# missing, so a second run does nothing.
#
#   libsodium-dev, pkg-config  the secure transport (CSodium links libsodium)
#   lld                        libFuzzer builds (-use-ld=lld)
#   libjemalloc-dev            package-benchmark's malloc statistics
#   libsqlite3-dev             durable local storage (CSQLite links the system SQLite)
#   redis-tools, redis-server  the RESP front door's checks and benchmark (redis-cli, redis-benchmark,
#                              and a plain redis-server to compare with)
#   python3-pip                to install redis-py (`redis` >= 5, for RESP3) when python3 lacks it
#   iproute2, iptables         scripts/partition-test.sh: nodes in network namespaces, a partition
#                              made with iptables
set -euo pipefail

packages=(libsodium-dev pkg-config lld libjemalloc-dev libsqlite3-dev redis-tools redis-server python3-pip iproute2 iptables)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "bootstrap: all system packages present (${packages[*]})"
else
    echo "bootstrap: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

# redis-py 5 or newer (RESP3: `protocol=3`) for Tests/RESPCompat/compat.py. Debian's python3-redis
# (4.3) is too old, so pip; Debian's own python3 is externally managed (PEP 668), hence --user and,
# failing that, --break-system-packages (a user-site package, not the system's).
if ! python3 -c 'import redis, sys; sys.exit(int(redis.__version__.split(".")[0]) < 5)' 2>/dev/null; then
    echo "bootstrap: installing the Python redis package (pip)"
    python3 -m pip install -q --user 'redis>=5' 2>/dev/null \
        || python3 -m pip install -q --user --break-system-packages 'redis>=5' \
        || python3 -m pip install -q 'redis>=5'
fi
echo "bootstrap: python3 redis $(python3 -c 'import redis; print(redis.__version__)')"

if ! command -v swift >/dev/null 2>&1; then
    echo "bootstrap: the Swift toolchain (6.2 or newer) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
echo "bootstrap: $(swift --version 2>/dev/null | head -n 1)"
