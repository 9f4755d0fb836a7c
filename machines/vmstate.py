"""The whole machine as one versioned byte stream: what ``savevm`` writes into a qcow2
image's VM-state area and ``loadvm`` reads back.

The stream is llvmtcg's own (QEMU's migration stream is not read or written):

    magic "LLVMTCG\\0VMSTATE\\0" (16 bytes), u32 FORMAT_VERSION (little endian),
    one encoded value: {"machine": identity, "clock_ns": virtual time,
                        "cpus": [each hart's state], "devices": {id: {"version", "state"}},
                        "memory": {region name: runs of non-zero pages}}

Values are encoded with a one-byte tag — ``N`` None, ``T``/``F`` bools, ``I`` an integer
(u8 length, signed little-endian bytes), ``S`` a string and ``B`` bytes (u64 length),
``L`` a list and ``D`` a dict with string keys (u32 count) — so RAM pages go in as they
are and nothing in an image can make the loader run code (unlike pickle).

Loading checks everything it can before it changes anything: the magic, the format
version, that the machine is the same (type, harts, memory regions), and that every
saved device exists here with the same state version and no device is missing. Then
the clock is set to the saved virtual time, memory is restored, devices reload (and
re-arm their timers on the restored clock, driving their interrupt lines), and the harts
reload last (dropping all translated code and TLBs). A device that still finds its
saved state malformed stops the load with an error; the VM then stays stopped, as QEMU
leaves it after a failed loadvm.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from devices.base import StateError, StateValue, nonzero_pages
from llvmtcg.runtime.physmem import RegionKind

if TYPE_CHECKING:
    from machines.machine import Machine

MAGIC = b"LLVMTCG\0VMSTATE\0"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<16sI")
_RAM_CHUNK = 1 << 24  # RAM is read and compared in 16 MiB pieces


class VmStateError(Exception):
    """A VM state that cannot be loaded into this machine (one line, for the user)."""


# -- the value encoding ----------------------------------------------------------------------

def encode(value: StateValue) -> bytes:
    """``value`` in the stream's encoding (see the module docstring)."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: StateValue, out: list[bytes]) -> None:
    if value is None:
        out.append(b"N")
    elif value is True or value is False:
        out.append(b"T" if value else b"F")
    elif isinstance(value, int):
        raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "little", signed=True)
        if len(raw) > 255:
            raise ValueError("integer too large for the VM state")
        out += [b"I", bytes((len(raw),)), raw]
    elif isinstance(value, str):
        raw = value.encode()
        out += [b"S", struct.pack("<Q", len(raw)), raw]
    elif isinstance(value, bytes | bytearray | memoryview):
        out += [b"B", struct.pack("<Q", len(value)), bytes(value)]
    elif isinstance(value, list | tuple):
        out += [b"L", struct.pack("<I", len(value))]
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        out += [b"D", struct.pack("<I", len(value))]
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"VM state keys are strings, not {key!r}")
            _encode(key, out)
            _encode(item, out)
    else:
        raise TypeError(f"{type(value).__name__} cannot be saved in the VM state")


def decode(data: bytes | memoryview) -> StateValue:
    """The value :func:`encode` made (VmStateError when ``data`` is not one whole
    encoded value)."""
    view = memoryview(data)
    try:
        value, end = _decode(view, 0)
    except (IndexError, struct.error, UnicodeDecodeError, RecursionError):
        raise VmStateError("VM state is truncated or corrupt") from None
    if end != len(view):
        raise VmStateError("VM state has trailing bytes")
    return value


def _decode(view: memoryview, pos: int) -> tuple[StateValue, int]:
    tag = view[pos]
    pos += 1
    if tag == ord("N"):
        return None, pos
    if tag in (ord("T"), ord("F")):
        return tag == ord("T"), pos
    if tag == ord("I"):
        length = view[pos]
        raw = view[pos + 1:pos + 1 + length]
        if len(raw) != length:
            raise IndexError
        return int.from_bytes(raw, "little", signed=True), pos + 1 + length
    if tag in (ord("S"), ord("B")):
        (length,) = struct.unpack_from("<Q", view, pos)
        raw = view[pos + 8:pos + 8 + length]
        if len(raw) != length:
            raise IndexError
        return (bytes(raw).decode() if tag == ord("S") else bytes(raw)), pos + 8 + length
    if tag in (ord("L"), ord("D")):
        (count,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if tag == ord("L"):
            items = []
            for _ in range(count):
                item, pos = _decode(view, pos)
                items.append(item)
            return items, pos
        entries: dict[str, StateValue] = {}
        for _ in range(count):
            key, pos = _decode(view, pos)
            if not isinstance(key, str):
                raise IndexError
            entries[key], pos = _decode(view, pos)
        return entries, pos
    raise IndexError


# -- the machine ---------------------------------------------------------------------------

def _memory_regions(machine: Machine) -> Iterator[tuple[str, int, int]]:
    """(name, base, size) of the RAM and ROM regions (devices are saved as devices)."""
    for region in machine.memory.regions():
        if region.kind in (RegionKind.RAM, RegionKind.ROM) and not region.overlay:
            yield region.name, region.base, region.size


def _identity(machine: Machine) -> dict[str, StateValue]:
    return {"type": machine.name, "harts": len(machine.harts),
            "memory": [[name, base, size] for name, base, size in _memory_regions(machine)]}


def save(machine: Machine) -> bytes:
    """The VM state stream of ``machine`` (stopped: called between CPU runs)."""
    memory: dict[str, StateValue] = {}
    for name, base, size in _memory_regions(machine):
        runs: list[list[StateValue]] = []
        for start in range(0, size, _RAM_CHUNK):
            chunk = machine.memory.read(base + start, min(_RAM_CHUNK, size - start))
            runs += [[start + offset, data] for offset, data in nonzero_pages(chunk)]
        memory[name] = runs
    state = {
        "machine": _identity(machine),
        "clock_ns": machine.clock.now_ns(),
        "cpus": [hart.save_state() for hart in machine.harts],
        "devices": {name: {"version": device.state_version, "state": device.save_state()}
                    for name, device in machine.stateful.items()},
        "memory": memory,
    }
    return _HEADER.pack(MAGIC, FORMAT_VERSION) + encode(state)


def check_header(data: bytes) -> None:
    """VmStateError unless ``data`` starts like a stream this version reads."""
    if len(data) < _HEADER.size:
        raise VmStateError("VM state is truncated")
    magic, version = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise VmStateError("the VM state was not saved by llvmtcg (QEMU's own VM state "
                           "cannot be loaded)")
    if version != FORMAT_VERSION:
        raise VmStateError(f"VM state format version {version} is not supported (this "
                           f"llvmtcg reads version {FORMAT_VERSION})")


def load(machine: Machine, data: bytes) -> None:
    """Restores ``machine`` from :func:`save`'s stream (see the module docstring)."""
    check_header(data)
    state = decode(memoryview(data)[_HEADER.size:])
    if not isinstance(state, dict):
        raise VmStateError("VM state is corrupt")
    saved_machine = state.get("machine")
    if saved_machine != _identity(machine):
        raise VmStateError(f"VM state was saved on another machine configuration "
                           f"({_describe(saved_machine)}; this is {_describe(_identity(machine))})")
    devices, cpus, memory = state.get("devices"), state.get("cpus"), state.get("memory")
    clock_ns = state.get("clock_ns")
    if (not isinstance(devices, dict) or not isinstance(cpus, list)
            or not isinstance(memory, dict) or not isinstance(clock_ns, int)):
        raise VmStateError("VM state is corrupt")
    for name, entry in devices.items():
        device = machine.stateful.get(name)
        if device is None:
            raise VmStateError(f"Unknown savevm section or instance '{name}' 0. Make sure "
                               "that your current VM setup matches your saved VM setup, "
                               "including any hotplugged devices")
        version = entry.get("version") if isinstance(entry, dict) else None
        if version != device.state_version:
            raise VmStateError(f"savevm: unsupported version {version} for '{name}' "
                               f"v{device.state_version}")
    missing = [name for name in machine.stateful if name not in devices]
    if missing:
        raise VmStateError(f"VM state lacks device '{missing[0]}'")
    if set(memory) != {name for name, _, _ in _memory_regions(machine)}:
        raise VmStateError("VM state memory regions do not match this machine")
    if len(cpus) != len(machine.harts):
        raise VmStateError("VM state is corrupt")
    try:
        for name, _, size in _memory_regions(machine):
            _check_runs(name, size, memory[name])
    except StateError as exc:
        raise VmStateError(str(exc)) from None

    machine.clock.set_now(clock_ns)
    try:
        for name, base, size in _memory_regions(machine):
            _restore_region(machine, base, size, memory[name])
        for name, device in machine.stateful.items():
            device.load_state(devices[name]["state"])
        for hart, saved in zip(machine.harts, cpus, strict=True):
            hart.load_state(saved)
    except (StateError, KeyError, TypeError, ValueError) as exc:
        raise VmStateError(f"VM state does not fit this machine: {exc}") from None


def _check_runs(name: str, size: int, runs: StateValue) -> None:
    if not isinstance(runs, list):
        raise StateError(f"saved memory of '{name}' is corrupt")
    for run in runs:
        if (not isinstance(run, list) or len(run) != 2 or not isinstance(run[0], int)
                or not isinstance(run[1], bytes) or run[0] < 0
                or run[0] + len(run[1]) > size):
            raise StateError(f"saved memory of '{name}' does not fit it")


def _restore_region(machine: Machine, base: int, size: int, runs: list) -> None:
    """A region zeroed, then its saved non-zero pages (checked) written back."""
    zero = bytes(min(size, _RAM_CHUNK))
    for start in range(0, size, _RAM_CHUNK):
        machine.memory.load(base + start, zero[:min(_RAM_CHUNK, size - start)])
    for offset, data in runs:
        machine.memory.load(base + offset, data)


def _describe(identity: StateValue) -> str:
    if not isinstance(identity, dict):
        return "unknown"
    memory = identity.get("memory")
    ram = sum(entry[2] for entry in memory if isinstance(entry, list) and len(entry) == 3
              and isinstance(entry[2], int)) if isinstance(memory, list) else 0
    return (f"machine '{identity.get('type')}', {identity.get('harts')} hart(s), "
            f"{ram >> 20} MiB of RAM and ROM")
