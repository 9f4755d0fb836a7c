"""Linux arm64 user-mode ABI (arch/arm64 in Linux; QEMU's linux-user/aarch64).

Syscalls: ``svc #0`` (4 bytes) with the number in x8 (the generic table, shared with
riscv64), arguments in x0-x5 and the result in x0. TLS: TPIDR_EL0. UNDEF raises
SIGILL, ``brk`` SIGTRAP. Signal frames are Linux's ``rt_sigframe``
(arch/arm64/kernel/signal.c, uapi asm/sigcontext.h): siginfo, then the ucontext whose
``sigcontext`` holds fault_address, x0-x30, sp, pc, pstate and the ``__reserved``
records — a ``fpsimd_context`` (FPSR, FPCR, V0-V31) and the terminator — followed by
the frame record (x29, x30) the handler's x29 points at. Handlers return through a
``mov x8, #139; svc #0`` trampoline (Linux: the vDSO's ``__kernel_rt_sigreturn``).
"""

from __future__ import annotations

import signal
import struct

from llvmtcg.frontends.aarch64.arch import Aarch64Arch
from llvmtcg.frontends.aarch64.cpu import MODELS, CpuModel, Excp, Reg
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.user.arch import (
    SIGFRAME_MCONTEXT,
    SIGFRAME_UCONTEXT,
    BadSignalFrame,
    UserArch,
    new_signal_frame,
    register_user_arch,
    signal_frame_mask_and_stack,
)

_MCONTEXT = SIGFRAME_MCONTEXT  # struct sigcontext, 16-aligned
_SC_FAULT_ADDRESS = _MCONTEXT
_SC_REGS = _MCONTEXT + 8
_SC_SP = _MCONTEXT + 256
_SC_PC = _MCONTEXT + 264
_SC_PSTATE = _MCONTEXT + 272
_SC_RESERVED = _MCONTEXT + 288  # __reserved[4096], 16-aligned
_FPSIMD_MAGIC = 0x4650_8001
_FPSIMD_SIZE = 16 + 32 * 16
_SIGFRAME_SIZE = _SC_RESERVED + 4096
_FRAME_RECORD = _SIGFRAME_SIZE  # {fp, lr}, where the handler's x29 points
_FRAME_SIZE = _FRAME_RECORD + 16
_NR_RT_SIGRETURN = 139
_NZCV_MASK = 0xF000_0000
_MONITOR_OPEN = (1 << 64) - 1  # excl_addr with no exclusive access pending


@register_user_arch
class Aarch64User(UserArch):
    name = "aarch64"
    platform = "aarch64"
    uname_machine = "aarch64"
    # 39-bit virtual addresses (Linux's CONFIG_ARM64_VA_BITS_39 with 4 KiB pages): the
    # host reserves the whole guest space up front.
    task_size = 1 << 39
    syscall_insn_length = 4
    stack_pointer = Reg.SP
    thread_pointer = Reg.TPIDR_EL0
    signal_frame_size = _FRAME_SIZE
    # movz x8, #139; svc #0
    sigreturn_code = struct.pack("<II", 0xD280_0000 | _NR_RT_SIGRETURN << 5 | 8, 0xD400_0001)
    # arch/arm64/include/uapi/asm/fcntl.h: O_DIRECTORY 040000, O_NOFOLLOW 0100000,
    # O_DIRECT 0200000, O_LARGEFILE 0400000 (the generic ones, in that order: 0200000,
    # 0400000, 040000, 0100000). glibc's opendir passes O_DIRECTORY, which the host
    # would read as O_DIRECT (EINVAL on tmpfs and overlay directories).
    open_flag_bits = ((0o40000, 0o200000), (0o100000, 0o400000),
                      (0o200000, 0o40000), (0o400000, 0o100000))

    def make_arch(self, cpu: str | None = None) -> Aarch64Arch:
        return Aarch64Arch(CpuModel.parse(cpu) if cpu is not None else CpuModel())

    def cpu_help(self) -> str:
        return "Available CPUs:\n" + "".join(f"  {name}\n" for name in sorted(MODELS))

    def hwcap(self, arch: Aarch64Arch) -> int:
        return arch.model.hwcap

    def syscall_number(self, state: CpuState) -> int:
        return state.get("x", 8)

    def syscall_args(self, state: CpuState) -> tuple[int, ...]:
        get = state.get
        return (get("x", 0), get("x", 1), get("x", 2), get("x", 3), get("x", 4), get("x", 5))

    def set_syscall_result(self, state: CpuState, value: int) -> None:
        state.set("x", value, 0)

    def exception_signal(self, state: CpuState, exception_index: int
                         ) -> tuple[int, str] | None:
        if exception_index == Excp.UDEF:
            return signal.SIGILL, f"illegal instruction 0x{state.get('badinsn'):08x}"
        if exception_index == Excp.BKPT:
            return signal.SIGTRAP, "breakpoint (brk)"
        return None

    def build_signal_frame(self, arch: Aarch64Arch, state: CpuState, siginfo: bytes,
                           uc_stack: tuple[int, int, int], mask: int) -> bytes:
        frame = new_signal_frame(_FRAME_SIZE, siginfo, uc_stack, mask)
        get = state.get
        struct.pack_into("<31Q", frame, _SC_REGS, *(get("x", i) for i in range(31)))
        struct.pack_into("<QQQ", frame, _SC_SP, get("x", 31), get("pc"),
                         arch.reg_read(state, Reg.CPSR))
        struct.pack_into("<IIII", frame, _SC_RESERVED, _FPSIMD_MAGIC, _FPSIMD_SIZE,
                         get("fpsr"), get("fpcr"))
        struct.pack_into("<64Q", frame, _SC_RESERVED + 16, *(get("v", i) for i in range(64)))
        # The terminator record (magic 0, size 0) follows: already zero.
        struct.pack_into("<QQ", frame, _FRAME_RECORD, get("x", 29), get("x", 30))
        return bytes(frame)

    def enter_signal_handler(self, arch: Aarch64Arch, state: CpuState, sig: int,
                             frame: int, handler: int, return_address: int) -> None:
        state.set("x", sig, 0)
        state.set("x", frame, 1)  # &frame->info
        state.set("x", frame + SIGFRAME_UCONTEXT, 2)
        state.set("x", frame + _FRAME_RECORD, 29)
        state.set("x", return_address, 30)
        state.set("x", frame, 31)  # sp
        state.set("pc", handler)
        state.set("excl_addr", _MONITOR_OPEN)  # exception entry clears the monitor

    def restore_signal_frame(self, arch: Aarch64Arch, state: CpuState, frame: bytes
                             ) -> tuple[int, tuple[int, int, int]]:
        magic, size = struct.unpack_from("<II", frame, _SC_RESERVED)
        if magic != _FPSIMD_MAGIC or size != _FPSIMD_SIZE:
            raise BadSignalFrame("no fpsimd_context record")
        regs = struct.unpack_from("<31Q", frame, _SC_REGS)
        sp, pc, pstate = struct.unpack_from("<QQQ", frame, _SC_SP)
        if pc & 3 or pstate & ~_NZCV_MASK & 0xFFFF_FFFF:
            raise BadSignalFrame("pc misaligned or pstate not EL0t")
        for i, value in enumerate(regs):
            state.set("x", value, i)
        state.set("x", sp, 31)
        state.set("pc", pc)
        state.set("excl_addr", _MONITOR_OPEN)  # and so does the exception return
        arch.reg_write(state, Reg.CPSR, pstate)
        fpsr, fpcr = struct.unpack_from("<II", frame, _SC_RESERVED + 8)
        arch.reg_write(state, Reg.FPSR, fpsr)
        arch.reg_write(state, Reg.FPCR, fpcr)
        for i, value in enumerate(struct.unpack_from("<64Q", frame, _SC_RESERVED + 16)):
            state.set("v", value, i)
        return signal_frame_mask_and_stack(frame)
