"""Linux riscv64 user-mode ABI (arch/riscv in Linux; QEMU's linux-user/riscv).

Syscalls: ``ecall`` (4 bytes, also in RVC code) with the number in a7, arguments in
a0-a5 and the result in a0. TLS: tp. Synchronous exceptions map to signals as Linux's
``do_trap_*`` handlers do.
"""

from __future__ import annotations

import signal

from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import KNOWN_EXTENSIONS, Cause, CpuModel, Reg
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.user.arch import UserArch, register_user_arch

_A0, _A7 = int(Reg.A0), int(Reg.A7)


@register_user_arch
class Riscv64User(UserArch):
    name = "riscv64"
    platform = "riscv64"
    uname_machine = "riscv64"
    task_size = 1 << 38  # Sv39, Linux's default for riscv64 user space
    syscall_insn_length = 4  # ecall has no compressed form
    stack_pointer = Reg.SP
    thread_pointer = Reg.TP

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
