#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (run as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

# device-tree-compiler: dtc checks the device trees we generate (tests/devices).
# qemu-system-misc: qemu-system-riscv64, the reference for the system emulator (tests/machines,
# tests/launcher); opensbi: the firmware -bios default loads.
# qemu-utils: qemu-img/qemu-io are the oracle for the block layer (tests/blockdev).
# gcc-aarch64-linux-gnu: the arm64 guest programs (tests/aarch64); the arm64 dpkg
# architecture lets tests fetch Debian's busybox-static:arm64 with apt-get download.
# gdb-multiarch: the debugger the gdbstub is tested with (tests/gdbstub).
# qemu-system-x86: qemu-system-x86_64, the reference for the KVM accelerator (tests/accel).
# libslirp0: the user-mode network stack behind -netdev user (launcher/net, through ctypes).
# u-boot-qemu: U-Boot for the virt machine, the quick guest of bench/io_uboot.
# samba: the smbd that -netdev user,smb=DIR starts (tests/net/test_guestfwd.py).
# dpkg-dev (dpkg-source) and deb-src lines: the slow user-mode tests build xz and zstd
# from Debian's sources (tests/user/debian_tools.py).
APT_PACKAGES=(qemu-user gcc-riscv64-linux-gnu libc6-dev-riscv64-cross libc6-riscv64-cross make
              device-tree-compiler qemu-system-misc opensbi qemu-utils
              gcc-aarch64-linux-gnu libc6-dev-arm64-cross gdb-multiarch qemu-system-x86
              libslirp0 dpkg-dev u-boot-qemu samba)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    NEED_UPDATE=1
fi
SOURCES=/etc/apt/sources.list.d/debian.sources
if [ -f "$SOURCES" ] && ! grep -q "deb-src" "$SOURCES"; then
    $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' "$SOURCES"
    NEED_UPDATE=1
fi
if [ ${#missing[@]} -gt 0 ] || [ -n "${NEED_UPDATE:-}" ]; then
    $SUDO apt-get update
    [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
        --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'
