#!/usr/bin/env bash
# Installs what StateMesh needs to build, test, fuzz and benchmark on a fresh
# Debian 12 machine with the Swift toolchain. Idempotent: installs only what is
# missing, so a second run does nothing.
#
#   libsodium-dev, pkg-config  the secure transport (CSodium links libsodium)
#   lld                        libFuzzer builds (-use-ld=lld)
#   libjemalloc-dev            package-benchmark's malloc statistics
#   libsqlite3-dev             durable local storage (CSQLite links the system SQLite)
set -euo pipefail

packages=(libsodium-dev pkg-config lld libjemalloc-dev libsqlite3-dev)
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

if ! command -v swift >/dev/null 2>&1; then
    echo "bootstrap: the Swift toolchain (6.2 or newer) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
echo "bootstrap: $(swift --version 2>/dev/null | head -n 1)"
