"""Linux riscv64 user-mode ABI (arch/riscv in Linux; QEMU's linux-user/riscv).

Syscalls: ``ecall`` (4 bytes, also in RVC code) with the number in a7, arguments in
a0-a5 and the result in a0. TLS: tp. Synchronous exceptions map to signals as Linux's
``do_trap_*`` handlers do. Signal frames are Linux's ``rt_sigframe``
(arch/riscv/kernel/signal.c, uapi sigcontext.h/ucontext.h), the return path is a
``li a7, 139; ecall`` trampoline (Linux: the vDSO's ``__vdso_rt_sigreturn``).
"""

from __future__ import annotations

import signal
import struct

from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import KNOWN_EXTENSIONS, Cause, CpuModel, Reg
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

_A0, _A7 = int(Reg.A0), int(Reg.A7)

# struct rt_sigframe { siginfo info; struct ucontext uc; } (Linux 6.1, no vector state):
# ucontext: uc_flags, uc_link, uc_stack (24), uc_sigmask (8) padded to the 128 bytes of
# a 1024-bit sigset, then uc_mcontext (a struct sigcontext, 16-aligned): sc_regs (pc,
# x1..x31), then the FP union sized for the Q extension: f[32] and fcsr of the D state,
# Q's f[64] being 16 more bytes wider plus fcsr and reserved[3], which must be zero.
_MCONTEXT = SIGFRAME_MCONTEXT
_SC_REGS = _MCONTEXT
_SC_FPREGS = _MCONTEXT + 256
_FCSR = _SC_FPREGS + 32 * 8
_Q_RESERVED = _SC_FPREGS + 64 * 8 + 4
_FRAME_SIZE = _MCONTEXT + 256 + 528
_NR_RT_SIGRETURN = 139


@register_user_arch
class Riscv64User(UserArch):
    name = "riscv64"
    platform = "riscv64"
    uname_machine = "riscv64"
    task_size = 1 << 38  # Sv39, Linux's default for riscv64 user space
    syscall_insn_length = 4  # ecall has no compressed form
    stack_pointer = Reg.SP
    thread_pointer = Reg.TP
    signal_frame_size = _FRAME_SIZE
    # li a7, 139; ecall
    sigreturn_code = struct.pack("<II", _NR_RT_SIGRETURN << 20 | _A7 << 7 | 0x13, 0x73)

    def make_arch(self, cpu: str | None = None) -> Riscv64Arch:
        return Riscv64Arch(CpuModel.parse(cpu) if cpu is not None else CpuModel())

    def cpu_help(self) -> str:
        return ("Available CPUs: rv64 (alias: any, max)\n"
                "Properties (ext=on|off): " + ", ".join(KNOWN_EXTENSIONS) + "\n")

    def hwcap(self, arch: Riscv64Arch) -> int:
        return arch.model.hwcap

    def syscall_number(self, state: CpuState) -> int:
        return state.get("x", _A7)

    def syscall_args(self, state: CpuState) -> tuple[int, ...]:
        get = state.get
        return (get("x", 10), get("x", 11), get("x", 12), get("x", 13), get("x", 14),
                get("x", 15))

    def set_syscall_result(self, state: CpuState, value: int) -> None:
        state.set("x", value, _A0)

    def exception_signal(self, state: CpuState, exception_index: int
                         ) -> tuple[int, str] | None:
        if exception_index == Cause.ILLEGAL_INSN:
            word = state.get("badinsn")
            width = 4 if word & 3 == 3 else 2
            return signal.SIGILL, f"illegal instruction 0x{word:0{2 * width}x}"
        if exception_index == Cause.BREAKPOINT:
            return signal.SIGTRAP, "breakpoint (ebreak)"
        if exception_index == Cause.INSN_ADDR_MISALIGNED:
            return signal.SIGBUS, "misaligned instruction address"
        return None

    def build_signal_frame(self, arch: Riscv64Arch, state: CpuState, siginfo: bytes,
                           uc_stack: tuple[int, int, int], mask: int) -> bytes:
        frame = new_signal_frame(_FRAME_SIZE, siginfo, uc_stack, mask)
        get = state.get
        struct.pack_into("<32Q", frame, _SC_REGS, get("pc"), *(get("x", i) for i in range(1, 32)))
        struct.pack_into("<32Q", frame, _SC_FPREGS, *(get("f", i) for i in range(32)))
        struct.pack_into("<I", frame, _FCSR, arch.reg_read(state, Reg.FCSR))
        return bytes(frame)

    def enter_signal_handler(self, arch: Riscv64Arch, state: CpuState, sig: int,
                             frame: int, handler: int, return_address: int) -> None:
        state.set("x", return_address, int(Reg.RA))
        state.set("x", frame, int(Reg.SP))
        state.set("x", sig, _A0)
        state.set("x", frame, int(Reg.A1))  # &frame->info
        state.set("x", frame + SIGFRAME_UCONTEXT, int(Reg.A2))
        state.set("pc", handler)

    def restore_signal_frame(self, arch: Riscv64Arch, state: CpuState, frame: bytes
                             ) -> tuple[int, tuple[int, int, int]]:
        if any(struct.unpack_from("<3I", frame, _Q_RESERVED)):
            raise BadSignalFrame("reserved FP state words are not zero")
        regs = struct.unpack_from("<32Q", frame, _SC_REGS)
        state.set("pc", regs[0])
        for i in range(1, 32):
            state.set("x", regs[i], i)
        for i, value in enumerate(struct.unpack_from("<32Q", frame, _SC_FPREGS)):
            state.set("f", value, i)
        arch.reg_write(state, Reg.FCSR, struct.unpack_from("<I", frame, _FCSR)[0])
        return signal_frame_mask_and_stack(frame)
