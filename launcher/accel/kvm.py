"""Linux KVM, x86-64: ``/dev/kvm`` through its ioctls (Documentation/virt/kvm/api.rst).

Everything the kernel ABI says is declared once here: the ctypes structures
(``kvm_run``, ``kvm_regs``, ``kvm_sregs``, ``kvm_segment``, ``kvm_cpuid2``,
``kvm_userspace_memory_region``, …), each ioctl as one :class:`Ioctl` (number built by
``_IOC`` from its direction and argument structure), the capabilities we need and the
exit reasons. On top of that:

- :class:`Kvm` — the system fd: API version and capability checks (every problem is a
  :class:`KvmError` with a one-line message), ``KVM_GET_SUPPORTED_CPUID``;
- :class:`KvmVm` — a VM made in the order the kernel requires on x86: TSS address and
  identity-map page, in-kernel irqchip (PIC, IOAPIC, LAPIC) and PIT, memory slots, then
  vCPUs;
- :class:`KvmVcpu` — registers, CPUID, ``KVM_RUN`` and its shared ``kvm_run`` page;
- :class:`HostMemory` — an anonymous host mapping to back guest RAM;
- :func:`decode_exit` — the ``kvm_run`` page after ``KVM_RUN`` as one typed exit
  (:data:`VcpuExit`), which ``launcher/accel/kvm_cpu.py`` handles.

Only the x86-64 layouts are declared (this accelerator runs x86-64 guests on x86-64
hosts).
"""

from __future__ import annotations

import ctypes
import enum
import errno
import mmap
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KVM_DEVICE = "/dev/kvm"
KVM_API_VERSION = 12  # the only stable version there has ever been

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


# -- ABI structures (include/uapi/linux/kvm.h, arch/x86/include/uapi/asm/kvm.h) -----------
class KvmUserspaceMemoryRegion(ctypes.Structure):
    _fields_ = [("slot", u32), ("flags", u32), ("guest_phys_addr", u64),
                ("memory_size", u64), ("userspace_addr", u64)]


KVM_MEM_READONLY = 1 << 1


class KvmRegs(ctypes.Structure):
    _fields_ = [(name, u64) for name in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class KvmSegment(ctypes.Structure):
    _fields_ = [("base", u64), ("limit", u32), ("selector", u16), ("type", u8),
                ("present", u8), ("dpl", u8), ("db", u8), ("s", u8), ("l", u8), ("g", u8),
                ("avl", u8), ("unusable", u8), ("padding", u8)]


class KvmDtable(ctypes.Structure):
    _fields_ = [("base", u64), ("limit", u16), ("padding", u16 * 3)]


KVM_NR_INTERRUPTS = 256


class KvmSregs(ctypes.Structure):
    _fields_ = [("cs", KvmSegment), ("ds", KvmSegment), ("es", KvmSegment),
                ("fs", KvmSegment), ("gs", KvmSegment), ("ss", KvmSegment),
                ("tr", KvmSegment), ("ldt", KvmSegment), ("gdt", KvmDtable),
                ("idt", KvmDtable), ("cr0", u64), ("cr2", u64), ("cr3", u64), ("cr4", u64),
                ("cr8", u64), ("efer", u64), ("apic_base", u64),
                ("interrupt_bitmap", u64 * ((KVM_NR_INTERRUPTS + 63) // 64))]


class KvmCpuidEntry2(ctypes.Structure):
    _fields_ = [("function", u32), ("index", u32), ("flags", u32), ("eax", u32),
                ("ebx", u32), ("ecx", u32), ("edx", u32), ("padding", u32 * 3)]


KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1  # (sic: the kernel's spelling)
KVM_MAX_CPUID_ENTRIES = 256  # what we offer KVM_GET_SUPPORTED_CPUID (QEMU starts at 100)


class KvmCpuid2(ctypes.Structure):
    """The header; the entries follow it (a flexible array member)."""

    _fields_ = [("nent", u32), ("padding", u32)]


def cpuid2_buffer(count: int) -> type[ctypes.Structure]:
    """A ``kvm_cpuid2`` type with room for ``count`` entries."""
    return type(f"KvmCpuid2x{count}", (ctypes.Structure,),
                {"_fields_": [("nent", u32), ("padding", u32),
                              ("entries", KvmCpuidEntry2 * count)]})


class KvmIrqLevel(ctypes.Structure):
    _fields_ = [("irq", u32), ("level", u32)]


class KvmPitConfig(ctypes.Structure):
    _fields_ = [("flags", u32), ("pad", u32 * 15)]


KVM_PIT_SPEAKER_DUMMY = 1


class KvmSignalMaskHeader(ctypes.Structure):
    """struct kvm_signal_mask without its flexible sigset (what the ioctl number
    encodes)."""

    _fields_ = [("len", u32)]


class KvmSignalMask(ctypes.Structure):
    """struct kvm_signal_mask with the kernel's 8-byte sigset."""

    _fields_ = [("len", u32), ("sigset", u8 * 8)]


class KvmFpu(ctypes.Structure):  # struct kvm_fpu (x86): the FXSAVE image's fields
    _fields_ = [("fpr", u8 * 16 * 8), ("fcw", u16), ("fsw", u16), ("ftwx", u8),
                ("pad1", u8), ("last_opcode", u16), ("last_ip", u64), ("last_dp", u64),
                ("xmm", u8 * 16 * 16), ("mxcsr", u32), ("pad2", u32)]


class KvmDebugregs(ctypes.Structure):  # struct kvm_debugregs (x86)
    _fields_ = [("db", u64 * 4), ("dr6", u64), ("dr7", u64), ("flags", u64),
                ("reserved", u64 * 9)]


class KvmMpState(ctypes.Structure):  # struct kvm_mp_state
    _fields_ = [("mp_state", u32)]


KVM_MP_STATE_HALTED = 3


class KvmGuestDebug(ctypes.Structure):
    _fields_ = [("control", u32), ("pad", u32), ("debugreg", u64 * 8)]


# struct kvm_run's exit union members
class KvmRunIo(ctypes.Structure):
    _fields_ = [("direction", u8), ("size", u8), ("port", u16), ("count", u32),
                ("data_offset", u64)]


KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT = 0, 1


class KvmRunMmio(ctypes.Structure):
    _fields_ = [("phys_addr", u64), ("data", u8 * 8), ("len", u32), ("is_write", u8)]


class KvmRunHw(ctypes.Structure):
    _fields_ = [("hardware_exit_reason", u64)]


class KvmRunFailEntry(ctypes.Structure):
    _fields_ = [("hardware_entry_failure_reason", u64), ("cpu", u32)]


class KvmRunInternal(ctypes.Structure):
    _fields_ = [("suberror", u32), ("ndata", u32), ("data", u64 * 16)]


class KvmRunSystemEvent(ctypes.Structure):
    _fields_ = [("type", u32), ("ndata", u32), ("data", u64 * 16)]


class KvmRunDebug(ctypes.Structure):  # struct kvm_debug_exit_arch (x86)
    _fields_ = [("exception", u32), ("pad", u32), ("pc", u64), ("dr6", u64), ("dr7", u64)]


class KvmRunExit(ctypes.Union):
    _fields_ = [("hw", KvmRunHw), ("fail_entry", KvmRunFailEntry), ("io", KvmRunIo),
                ("mmio", KvmRunMmio), ("internal", KvmRunInternal),
                ("system_event", KvmRunSystemEvent), ("debug", KvmRunDebug),
                ("padding", ctypes.c_char * 256)]


class KvmRun(ctypes.Structure):
    """The head of the page shared with ``KVM_RUN`` (the rest is not used here)."""

    _fields_ = [("request_interrupt_window", u8), ("immediate_exit", u8),
                ("padding1", u8 * 6), ("exit_reason", u32),
                ("ready_for_interrupt_injection", u8), ("if_flag", u8), ("flags", u16),
                ("cr8", u64), ("apic_base", u64), ("exit", KvmRunExit)]


# -- ioctl numbers (include/uapi/asm-generic/ioctl.h) ---------------------------------------
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2
KVMIO = 0xAE


@dataclass(frozen=True, slots=True)
class Ioctl:
    """One KVM ioctl: its name, number within KVMIO, direction and argument type."""

    name: str
    nr: int
    direction: int = _IOC_NONE
    arg: type | None = None

    @property
    def code(self) -> int:
        size = ctypes.sizeof(self.arg) if self.arg is not None else 0
        return (self.direction << 30) | (size << 16) | (KVMIO << 8) | self.nr


_W, _R, _RW = _IOC_WRITE, _IOC_READ, _IOC_READ | _IOC_WRITE

# /dev/kvm
KVM_GET_API_VERSION = Ioctl("KVM_GET_API_VERSION", 0x00)
KVM_CREATE_VM = Ioctl("KVM_CREATE_VM", 0x01)
KVM_CHECK_EXTENSION = Ioctl("KVM_CHECK_EXTENSION", 0x03)
KVM_GET_VCPU_MMAP_SIZE = Ioctl("KVM_GET_VCPU_MMAP_SIZE", 0x04)
KVM_GET_SUPPORTED_CPUID = Ioctl("KVM_GET_SUPPORTED_CPUID", 0x05, _RW, KvmCpuid2)
# VM fd
KVM_CREATE_VCPU = Ioctl("KVM_CREATE_VCPU", 0x41)
KVM_SET_USER_MEMORY_REGION = Ioctl("KVM_SET_USER_MEMORY_REGION", 0x46, _W,
                                   KvmUserspaceMemoryRegion)
KVM_SET_TSS_ADDR = Ioctl("KVM_SET_TSS_ADDR", 0x47)
KVM_SET_IDENTITY_MAP_ADDR = Ioctl("KVM_SET_IDENTITY_MAP_ADDR", 0x48, _W, u64)
KVM_CREATE_IRQCHIP = Ioctl("KVM_CREATE_IRQCHIP", 0x60)
KVM_IRQ_LINE = Ioctl("KVM_IRQ_LINE", 0x61, _W, KvmIrqLevel)
KVM_CREATE_PIT2 = Ioctl("KVM_CREATE_PIT2", 0x77, _W, KvmPitConfig)
# vCPU fd
KVM_RUN = Ioctl("KVM_RUN", 0x80)
KVM_GET_REGS = Ioctl("KVM_GET_REGS", 0x81, _R, KvmRegs)
KVM_SET_REGS = Ioctl("KVM_SET_REGS", 0x82, _W, KvmRegs)
KVM_GET_SREGS = Ioctl("KVM_GET_SREGS", 0x83, _R, KvmSregs)
KVM_SET_SREGS = Ioctl("KVM_SET_SREGS", 0x84, _W, KvmSregs)
KVM_SET_SIGNAL_MASK = Ioctl("KVM_SET_SIGNAL_MASK", 0x8B, _W, KvmSignalMaskHeader)
KVM_GET_FPU = Ioctl("KVM_GET_FPU", 0x8C, _R, KvmFpu)
KVM_SET_FPU = Ioctl("KVM_SET_FPU", 0x8D, _W, KvmFpu)
KVM_GET_DEBUGREGS = Ioctl("KVM_GET_DEBUGREGS", 0xA1, _R, KvmDebugregs)
KVM_GET_MP_STATE = Ioctl("KVM_GET_MP_STATE", 0x98, _R, KvmMpState)
KVM_SET_CPUID2 = Ioctl("KVM_SET_CPUID2", 0x90, _W, KvmCpuid2)
KVM_SET_GUEST_DEBUG = Ioctl("KVM_SET_GUEST_DEBUG", 0x9B, _W, KvmGuestDebug)


class Cap(enum.IntEnum):
    """The capabilities this accelerator relies on (KVM_CAP_*)."""

    IRQCHIP = 0
    HLT = 1
    USER_MEMORY = 3
    SET_TSS_ADDR = 4
    EXT_CPUID = 7
    PIT2 = 33
    SET_IDENTITY_MAP_ADDR = 37
    READONLY_MEM = 81
    IMMEDIATE_EXIT = 136


REQUIRED_CAPS = (Cap.USER_MEMORY, Cap.SET_TSS_ADDR, Cap.SET_IDENTITY_MAP_ADDR, Cap.IRQCHIP,
                 Cap.PIT2, Cap.EXT_CPUID, Cap.IMMEDIATE_EXIT)


class ExitReason(enum.IntEnum):
    """KVM_EXIT_* (the ones this accelerator can see)."""

    UNKNOWN = 0
    EXCEPTION = 1
    IO = 2
    HYPERCALL = 3
    DEBUG = 4
    HLT = 5
    MMIO = 6
    IRQ_WINDOW_OPEN = 7
    SHUTDOWN = 8
    FAIL_ENTRY = 9
    INTR = 10
    INTERNAL_ERROR = 17
    SYSTEM_EVENT = 24


class SystemEventType(enum.IntEnum):
    SHUTDOWN = 1
    RESET = 2
    CRASH = 3


# -- typed exits --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IoIn:
    """``in``/``ins``: ``count`` reads of ``size`` bytes from ``port``; the values go to
    the kvm_run page at ``data_offset``."""

    port: int
    size: int
    count: int
    data_offset: int


@dataclass(frozen=True, slots=True)
class IoOut:
    """``out``/``outs``: ``count`` writes of ``size`` bytes; ``data`` holds them all."""

    port: int
    size: int
    count: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MmioRead:
    addr: int
    size: int


@dataclass(frozen=True, slots=True)
class MmioWrite:
    addr: int
    size: int
    value: int


@dataclass(frozen=True, slots=True)
class Hlt:
    """HLT with the irqchip in user space (with an in-kernel irqchip the kernel waits)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """A triple fault: the machine resets (QEMU: a system reset request)."""


@dataclass(frozen=True, slots=True)
class InternalError:
    suberror: int
    data: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FailEntry:
    reason: int  # hardware_entry_failure_reason (VMX/SVM specific)
    cpu: int


@dataclass(frozen=True, slots=True)
class SystemEvent:
    type: int  # SystemEventType, or a newer one
    data: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Debug:
    """A guest-debug exit (single step, breakpoint): the gdbstub's."""

    pc: int
    exception: int
    dr6: int
    dr7: int


@dataclass(frozen=True, slots=True)
class Interrupted:
    """KVM_RUN returned EINTR: a kick (``immediate_exit`` or a signal)."""


@dataclass(frozen=True, slots=True)
class Unhandled:
    """An exit reason this accelerator does not expect (``hardware`` for UNKNOWN)."""

    reason: int
    hardware: int = 0


VcpuExit = (IoIn | IoOut | MmioRead | MmioWrite | Hlt | Shutdown | InternalError
            | FailEntry | SystemEvent | Debug | Interrupted | Unhandled)

_HLT, _SHUTDOWN, _INTERRUPTED = Hlt(), Shutdown(), Interrupted()


def decode_exit(run: KvmRun, page: memoryview | bytes) -> VcpuExit:
    """The exit ``KVM_RUN`` left in ``run``; ``page`` is the whole kvm_run mapping (port
    output data lives at ``io.data_offset`` in it)."""
    reason = run.exit_reason
    exit_ = run.exit
    match reason:
        case ExitReason.IO:
            io = exit_.io
            if io.direction == KVM_EXIT_IO_OUT:
                length = io.size * io.count
                data = bytes(page[io.data_offset:io.data_offset + length])
                return IoOut(io.port, io.size, io.count, data)
            return IoIn(io.port, io.size, io.count, io.data_offset)
        case ExitReason.MMIO:
            mmio = exit_.mmio
            if mmio.is_write:
                value = int.from_bytes(bytes(mmio.data)[:mmio.len], "little")
                return MmioWrite(mmio.phys_addr, mmio.len, value)
            return MmioRead(mmio.phys_addr, mmio.len)
        case ExitReason.HLT:
            return _HLT
        case ExitReason.SHUTDOWN:
            return _SHUTDOWN
        case ExitReason.INTR:
            return _INTERRUPTED
        case ExitReason.INTERNAL_ERROR:
            internal = exit_.internal
            count = min(internal.ndata, 16)
            return InternalError(internal.suberror, tuple(internal.data[:count]))
        case ExitReason.FAIL_ENTRY:
            fail = exit_.fail_entry
            return FailEntry(fail.hardware_entry_failure_reason, fail.cpu)
        case ExitReason.SYSTEM_EVENT:
            event = exit_.system_event
            count = min(event.ndata, 16)
            return SystemEvent(event.type, tuple(event.data[:count]))
        case ExitReason.DEBUG:
            debug = exit_.debug
            return Debug(debug.pc, debug.exception, debug.dr6, debug.dr7)
        case ExitReason.UNKNOWN:
            return Unhandled(reason, exit_.hw.hardware_exit_reason)
    return Unhandled(reason)


# -- errors -------------------------------------------------------------------------------
class KvmError(Exception):
    """KVM cannot be used as asked; the message is one line for the user."""


class KvmUnavailable(KvmError):
    """No usable /dev/kvm here (absent, no permission, too old, a capability missing):
    the launcher may fall back to another accelerator (``-accel kvm:tcg``)."""


# -- libc ---------------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc.ioctl.restype = ctypes.c_int
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.munmap.restype = ctypes.c_int
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_NORESERVE = 0x4000


def _ioctl(fd: int, request: Ioctl, arg: object = None) -> int:
    """One ioctl; ctypes releases the GIL for the call (KVM_RUN runs guest code in it).
    OSError (with the ioctl's name) on failure."""
    pointer = arg if arg is None or isinstance(arg, int) else ctypes.addressof(arg)
    result = _libc.ioctl(fd, request.code, pointer)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{request.name}: {os.strerror(err)}")
    return result


class HostMemory:
    """``size`` bytes of anonymous, private, zero-filled host memory (guest RAM or a
    firmware image), at host address ``address``."""

    def __init__(self, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = -(-size // page) * page
        address = _libc.mmap(None, self.size, mmap.PROT_READ | mmap.PROT_WRITE,
                             mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
        if address in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"cannot map {self.size} bytes of guest memory: "
                               f"{os.strerror(err)}")
        self.address: int = address

    def read(self, offset: int, size: int) -> bytes:
        self._check(offset, size)
        return ctypes.string_at(self.address + offset, size)

    def write(self, offset: int, data: bytes) -> None:
        self._check(offset, len(data))
        ctypes.memmove(self.address + offset, data, len(data))

    def _check(self, offset: int, size: int) -> None:
        if self.address == 0:
            raise ValueError("host memory already unmapped")
        if offset < 0 or size < 0 or offset + size > self.size:
            raise IndexError(f"{size} bytes at {offset:#x} outside {self.size:#x} bytes")

    def close(self) -> None:
        if self.address:
            _libc.munmap(self.address, self.size)
            self.address = 0


# -- /dev/kvm -------------------------------------------------------------------------------
class Kvm:
    """The KVM subsystem (the /dev/kvm fd), checked for what this accelerator needs."""

    def __init__(self, path: str = KVM_DEVICE) -> None:
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise KvmUnavailable(f"failed to initialize kvm: No such file or directory "
                                 f"({path} is absent: no KVM on this host)") from None
        except PermissionError:
            raise KvmUnavailable(f"failed to initialize kvm: Permission denied (no read/"
                                 f"write access to {path})") from None
        except OSError as exc:
            raise KvmUnavailable(f"failed to initialize kvm: {exc.strerror} ({path})") \
                from None
        try:
            self._check()
        except BaseException:
            os.close(self.fd)
            raise

    def _check(self) -> None:
        version = _ioctl(self.fd, KVM_GET_API_VERSION)
        if version != KVM_API_VERSION:
            raise KvmUnavailable(f"failed to initialize kvm: KVM API version {version} "
                                 f"(only {KVM_API_VERSION} is supported)")
        missing = [cap for cap in REQUIRED_CAPS if not self.check_extension(cap)]
        if missing:
            names = ", ".join(f"KVM_CAP_{cap.name}" for cap in missing)
            raise KvmUnavailable(f"failed to initialize kvm: the kernel lacks {names}, "
                                 "which llvmtcg requires")
        self.vcpu_mmap_size = _ioctl(self.fd, KVM_GET_VCPU_MMAP_SIZE)

    def check_extension(self, cap: int) -> int:
        return _ioctl(self.fd, KVM_CHECK_EXTENSION, cap)

    def supported_cpuid(self) -> list[CpuidEntry]:
        """KVM_GET_SUPPORTED_CPUID (retried with a larger buffer on E2BIG)."""
        count = KVM_MAX_CPUID_ENTRIES
        while True:
            buffer = cpuid2_buffer(count)()
            buffer.nent = count
            try:
                _ioctl(self.fd, KVM_GET_SUPPORTED_CPUID, buffer)
            except OSError as exc:
                if exc.errno == errno.E2BIG and count < 4096:
                    count *= 2
                    continue
                raise
            return [CpuidEntry.from_struct(buffer.entries[i]) for i in range(buffer.nent)]

    def create_vm(self) -> KvmVm:
        return KvmVm(self, _ioctl(self.fd, KVM_CREATE_VM, 0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True, slots=True)
class CpuidEntry:
    """One CPUID leaf/subleaf as KVM lists them (kvm_cpuid_entry2)."""

    function: int
    index: int
    flags: int
    eax: int
    ebx: int
    ecx: int
    edx: int

    @classmethod
    def from_struct(cls, entry: KvmCpuidEntry2) -> CpuidEntry:
        return cls(entry.function, entry.index, entry.flags, entry.eax, entry.ebx,
                   entry.ecx, entry.edx)


@dataclass(frozen=True, slots=True)
class MemorySlot:
    """One KVM memory slot: guest-physical [gpa, gpa + size) backed by host memory."""

    slot: int
    gpa: int
    size: int
    host_address: int
    read_only: bool = False


# Where the x86 VM's private pages go (QEMU's choice: just below the BIOS at 4 GiB - 16 MiB
# there is nothing, so KVM's three TSS pages and the identity-map page sit at 0xfeffc000).
IDENTITY_MAP_ADDR = 0xFEFFC000
TSS_ADDR = IDENTITY_MAP_ADDR + 0x1000


class KvmVm:
    """One VM. ``setup_x86`` must come before any vCPU (the kernel's order)."""

    def __init__(self, kvm: Kvm, fd: int) -> None:
        self.kvm = kvm
        self.fd = fd
        self.slots: list[MemorySlot] = []
        self.vcpus: list[KvmVcpu] = []

    def setup_x86(self) -> None:
        """Identity-map page and TSS (needed by VMX for real mode), then the in-kernel
        irqchip (PIC, IOAPIC, LAPICs) and PIT: all before vCPUs are created."""
        _ioctl(self.fd, KVM_SET_IDENTITY_MAP_ADDR, u64(IDENTITY_MAP_ADDR))
        _ioctl(self.fd, KVM_SET_TSS_ADDR, TSS_ADDR)
        _ioctl(self.fd, KVM_CREATE_IRQCHIP)
        _ioctl(self.fd, KVM_CREATE_PIT2, KvmPitConfig(flags=KVM_PIT_SPEAKER_DUMMY))

    def map_memory(self, gpa: int, size: int, host_address: int, *,
                   read_only: bool = False) -> MemorySlot:
        """Register [gpa, gpa + size) as guest memory backed at ``host_address``."""
        if read_only and not self.kvm.check_extension(Cap.READONLY_MEM):
            raise KvmError("kvm does not support KVM_CAP_READONLY_MEM (read-only memory)")
        slot = MemorySlot(len(self.slots), gpa, size, host_address, read_only)
        region = KvmUserspaceMemoryRegion(slot=slot.slot,
                                          flags=KVM_MEM_READONLY if read_only else 0,
                                          guest_phys_addr=gpa, memory_size=size,
                                          userspace_addr=host_address)
        _ioctl(self.fd, KVM_SET_USER_MEMORY_REGION, region)
        self.slots.append(slot)
        return slot

    def set_irq_line(self, irq: int, level: bool) -> None:
        """Drive GSI ``irq`` of the in-kernel irqchip (PIC and IOAPIC pins)."""
        _ioctl(self.fd, KVM_IRQ_LINE, KvmIrqLevel(irq=irq, level=int(level)))

    def create_vcpu(self, vcpu_id: int) -> KvmVcpu:
        vcpu = KvmVcpu(self, vcpu_id, _ioctl(self.fd, KVM_CREATE_VCPU, vcpu_id))
        self.vcpus.append(vcpu)
        return vcpu

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        self.vcpus.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class KvmVcpu:
    """One vCPU: its fd and its mmap'ed kvm_run page."""

    def __init__(self, vm: KvmVm, vcpu_id: int, fd: int) -> None:
        self.vm = vm
        self.id = vcpu_id
        self.fd = fd
        self.page = mmap.mmap(fd, vm.kvm.vcpu_mmap_size, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        self.run_struct = KvmRun.from_buffer(self.page)

    def run(self) -> VcpuExit:
        """KVM_RUN until the next exit (the GIL is released meanwhile)."""
        try:
            _ioctl(self.fd, KVM_RUN)
        except OSError as exc:
            if exc.errno in (errno.EINTR, errno.EAGAIN):
                return _INTERRUPTED
            raise
        return decode_exit(self.run_struct, memoryview(self.page))

    def get_regs(self) -> KvmRegs:
        regs = KvmRegs()
        _ioctl(self.fd, KVM_GET_REGS, regs)
        return regs

    def set_regs(self, regs: KvmRegs) -> None:
        _ioctl(self.fd, KVM_SET_REGS, regs)

    def get_sregs(self) -> KvmSregs:
        sregs = KvmSregs()
        _ioctl(self.fd, KVM_GET_SREGS, sregs)
        return sregs

    def set_sregs(self, sregs: KvmSregs) -> None:
        _ioctl(self.fd, KVM_SET_SREGS, sregs)

    def get_fpu(self) -> KvmFpu:
        fpu = KvmFpu()
        _ioctl(self.fd, KVM_GET_FPU, fpu)
        return fpu

    def halted(self) -> bool:
        """Whether the vCPU waits in HLT (the in-kernel irqchip keeps that state)."""
        state = KvmMpState()
        _ioctl(self.fd, KVM_GET_MP_STATE, state)
        return state.mp_state == KVM_MP_STATE_HALTED

    def set_fpu(self, fpu: KvmFpu) -> None:
        _ioctl(self.fd, KVM_SET_FPU, fpu)

    def get_debugregs(self) -> KvmDebugregs:
        debugregs = KvmDebugregs()
        _ioctl(self.fd, KVM_GET_DEBUGREGS, debugregs)
        return debugregs

    def set_cpuid(self, entries: Sequence[CpuidEntry]) -> None:
        buffer = cpuid2_buffer(len(entries))()
        buffer.nent = len(entries)
        for slot, entry in zip(buffer.entries, entries, strict=True):
            for name in ("function", "index", "flags", "eax", "ebx", "ecx", "edx"):
                setattr(slot, name, getattr(entry, name))
        _ioctl(self.fd, KVM_SET_CPUID2, buffer)

    def set_signal_mask(self, signals: Iterable[int]) -> None:
        """The signal mask while in KVM_RUN (signal n is bit n - 1)."""
        bits = 0
        for signum in signals:
            bits |= 1 << (int(signum) - 1)
        mask = KvmSignalMask(len=8)
        mask.sigset[:] = bits.to_bytes(8, "little")
        _ioctl(self.fd, KVM_SET_SIGNAL_MASK, mask)

    def set_guest_debug(self, control: int, debugreg: Iterable[int] = ()) -> None:
        debug = KvmGuestDebug(control=control)
        for i, value in enumerate(debugreg):
            debug.debugreg[i] = value
        _ioctl(self.fd, KVM_SET_GUEST_DEBUG, debug)

    def write_io_data(self, offset: int, data: bytes) -> None:
        """Answer an IoIn: its values go to the kvm_run page at ``offset``."""
        self.page[offset:offset + len(data)] = data

    def write_mmio_data(self, data: bytes) -> None:
        """Answer an MmioRead (up to 8 bytes)."""
        ctypes.memmove(ctypes.addressof(self.run_struct.exit.mmio.data), data, len(data))

    def set_immediate_exit(self, value: bool) -> None:
        self.run_struct.immediate_exit = int(value)

    def close(self) -> None:
        if self.fd >= 0:
            del self.run_struct  # the exported buffer must go before the mmap closes
            self.page.close()
            os.close(self.fd)
            self.fd = -1
