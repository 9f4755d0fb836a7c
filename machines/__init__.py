"""Machines for system emulation: one module per board, reading like its memory map.

- registry.py: machine types by name (``-M help``);
- machine.py: options, the built Machine, device-tree helpers;
- boot.py: loading firmware, kernel, initrd and device tree as QEMU does;
- cpu.py: what a machine needs from a system-mode CPU (SystemCpu) and where it gets one;
- riscv_cpu.py: ``-cpu rv64`` and its properties; virtio_devices.py: ``-device``;
- loop.py: the main loop (CPU, virtual clock, host I/O);
- riscv64_virt.py, riscv64_spike.py: QEMU 7.2's virt and spike.
"""
