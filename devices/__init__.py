"""Platform devices for system emulation (see base.py for the protocol they share).

Each module is one device as QEMU 7.2 emulates it, plus the function that adds its
device-tree node: uart16550, plic, aclint, sifive_test, goldfish_rtc, htif; fdt.py
builds and reads device trees. Devices import nothing from llvmtcg.
"""
