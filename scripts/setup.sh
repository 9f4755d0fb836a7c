#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (run as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

# device-tree-compiler: dtc checks the device trees we generate (tests/devices).
# qemu-system-misc: qemu-system-riscv64, the reference for the system emulator (tests/machines,
# tests/launcher); opensbi: the firmware -bios default loads.
# qemu-utils: qemu-img/qemu-io are the oracle for the block layer (tests/blockdev).
APT_PACKAGES=(qemu-user gcc-riscv64-linux-gnu libc6-dev-riscv64-cross libc6-riscv64-cross make
              device-tree-compiler qemu-system-misc opensbi qemu-utils)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'
