"""The KVM vCPU as the monitors see it (``launcher.monitor.vm.CpuView``): registers
read with KVM_GET_REGS/SREGS/FPU/DEBUGREGS and printed as QEMU's x86_cpu_dump_state
prints them (``info registers``), QEMU's ``$name`` registers for ``print``, and the
x86 page walk (``x``: linear addresses through CR3, as QEMU's debug accesses).

Every method runs on the machine loop's thread, which is the vCPU thread: the vCPU is
out of KVM_RUN whenever a monitor command runs.
"""

from __future__ import annotations

from collections.abc import Callable

from launcher.accel.kvm import KvmSegment
from launcher.accel.kvm_cpu import KvmCpu
from launcher.monitor.vm import MonitorError

# QEMU's descriptor flag bits (target/i386/cpu.h), as its segment cache keeps them.
_DESC_TYPE_SHIFT, _DESC_A, _DESC_W_R, _DESC_C_E, _DESC_CS = 8, 1 << 8, 1 << 9, 1 << 10, 1 << 11
_DESC_S, _DESC_DPL_SHIFT, _DESC_P = 1 << 12, 13, 1 << 15
_DESC_AVL, _DESC_L, _DESC_B, _DESC_G = 1 << 20, 1 << 21, 1 << 22, 1 << 23
_EFER_LMA = 1 << 10
_CR0_PE, _CR0_PG = 1, 1 << 31
_CR4_PSE, _CR4_PAE, _CR4_LA57 = 1 << 4, 1 << 5, 1 << 12
_SYS_TYPES = (("Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate",
               "IntGate16", "TrapGate16", "Reserved", "TSS32-avl", "Reserved", "TSS32-busy",
               "CallGate32", "Reserved", "IntGate32", "TrapGate32"),
              ("<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved",
               "Reserved", "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "Reserved",
               "Reserved", "IntGate64", "TrapGate64"))
_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp")
# QEMU's i386 monitor names (target/i386/monitor.c): the whole (64-bit) registers under
# their 32-bit names; there are no $rax or $r8.
_MONITOR_REGS = {"eax": "rax", "ecx": "rcx", "edx": "rdx", "ebx": "rbx", "esp": "rsp",
                 "sp": "rsp", "ebp": "rbp", "fp": "rbp", "esi": "rsi", "edi": "rdi",
                 "eip": "rip", "eflags": "rflags"}


def segment_flags(seg: KvmSegment) -> int:
    """QEMU's segment-cache flags for a KVM segment (target/i386/kvm/kvm.c get_seg)."""
    return (seg.type << _DESC_TYPE_SHIFT | (_DESC_P if seg.present else 0)
            | seg.dpl << _DESC_DPL_SHIFT | seg.db << 22 | (_DESC_S if seg.s else 0)
            | seg.l << 21 | (_DESC_G if seg.g else 0) | (_DESC_AVL if seg.avl else 0))


class KvmX86Cpus:
    """One x86-64 KVM vCPU (QEMU's CPU #0) as a monitor CpuView."""

    def __init__(self, cpu: KvmCpu) -> None:
        self.cpu = cpu

    @property
    def count(self) -> int:
        return 1

    def _check(self, cpu: int) -> None:
        if cpu != 0:
            raise MonitorError(f"no CPU #{cpu}")

    def pc(self, cpu: int = 0) -> int:
        self._check(cpu)
        vcpu = self.cpu.vcpu
        return (vcpu.get_sregs().cs.base + vcpu.get_regs().rip) & (1 << 64) - 1

    def register(self, name: str, cpu: int = 0) -> int:
        self._check(cpu)
        vcpu = self.cpu.vcpu
        name = name.lower()
        if name == "pc":
            return self.pc(cpu)
        if name in _MONITOR_REGS:
            return getattr(vcpu.get_regs(), _MONITOR_REGS[name])
        if name in ("cs", "ds", "es", "ss", "fs", "gs"):
            return getattr(vcpu.get_sregs(), name).selector
        raise KeyError(name)

    def cpu_info(self, cpu: int = 0) -> tuple[str, dict[str, int]]:
        return "/machine/unattached/device[0]", {"core-id": 0, "thread-id": 0,
                                                 "socket-id": 0}

    def disassembler(self, cpu: int = 0) -> tuple[str, int, int]:
        """QEMU's monitor default for x86: the current code segment's size (64-bit in
        long mode with CS.L, else CS.D/B picks 32 or 16)."""
        import capstone
        self._check(cpu)
        sregs = self.cpu.vcpu.get_sregs()
        if sregs.efer & _EFER_LMA and sregs.cs.l:
            mode = capstone.CS_MODE_64
        else:
            mode = capstone.CS_MODE_32 if sregs.cs.db else capstone.CS_MODE_16
        return "x86_64", capstone.CS_ARCH_X86, mode

    # -- info registers -------------------------------------------------------------
    def registers_text(self, cpu: int = 0) -> str:
        """QEMU's x86_cpu_dump_state with CPU_DUMP_FPU, for a vCPU that is neither in
        SMM nor in an interrupt shadow (A20 is always on for KVM)."""
        self._check(cpu)
        vcpu = self.cpu.vcpu
        regs, sregs = vcpu.get_regs(), vcpu.get_sregs()
        lma = bool(sregs.efer & _EFER_LMA)
        cs64 = lma and bool(sregs.cs.l)
        eflags = regs.rflags
        flags = "".join(c if eflags & bit else "-" for c, bit in (
            ("D", 1 << 10), ("O", 1 << 11), ("S", 1 << 7), ("Z", 1 << 6), ("A", 1 << 4),
            ("P", 1 << 2), ("C", 1)))
        cpl = sregs.ss.dpl if sregs.cr0 & _CR0_PE else 0
        state = f" CPL={cpl} II=0 A20=1 SMM=0 HLT={int(vcpu.halted())}"
        lines = ["", f"CPU#{cpu}"]
        if cs64:
            names = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP",
                     *(f"R{i:<2}" for i in range(8, 16)))
            values = [getattr(regs, n) for n in _GPRS] + [getattr(regs, f"r{i}")
                                                           for i in range(8, 16)]
            for row in range(4):
                lines.append(" ".join(f"{names[i]}={values[i]:016x}"
                                      for i in range(row * 4, row * 4 + 4)))
            lines.append(f"RIP={regs.rip:016x} RFL={eflags:08x} [{flags}]{state}")
        else:
            names = ("EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP")
            values = [getattr(regs, n) & 0xFFFFFFFF for n in _GPRS]
            for row in range(2):
                lines.append(" ".join(f"{names[i]}={values[i]:08x}"
                                      for i in range(row * 4, row * 4 + 4)))
            lines.append(f"EIP={regs.rip & 0xFFFFFFFF:08x} EFL={eflags & 0xFFFFFFFF:08x} "
                         f"[{flags}]{state}")
        protected = bool(sregs.cr0 & _CR0_PE)
        for name in ("es", "cs", "ss", "ds", "fs", "gs", "ldt", "tr"):
            seg = getattr(sregs, name)
            lines.append(self._segment(f"{name.upper():<3}", seg, lma, protected))
        for name in ("gdt", "idt"):
            table = getattr(sregs, name)
            base = f"{table.base:016x}" if lma else f"{table.base & 0xFFFFFFFF:08x}"
            lines.append(f"{name.upper()}=     {base} {table.limit:08x}")
        if lma:
            lines.append(f"CR0={sregs.cr0 & 0xFFFFFFFF:08x} CR2={sregs.cr2:016x} "
                         f"CR3={sregs.cr3:016x} CR4={sregs.cr4 & 0xFFFFFFFF:08x}")
        else:
            lines.append(f"CR0={sregs.cr0 & 0xFFFFFFFF:08x} CR2={sregs.cr2 & 0xFFFFFFFF:08x} "
                         f"CR3={sregs.cr3 & 0xFFFFFFFF:08x} CR4={sregs.cr4 & 0xFFFFFFFF:08x}")
        debug = vcpu.get_debugregs()
        lines.append("".join(f"DR{i}={debug.db[i]:016x} " for i in range(4)))
        lines.append(f"DR6={debug.dr6:016x} DR7={debug.dr7:016x}")
        lines.append(f"EFER={sregs.efer:016x}")
        lines += self._fpu_lines(cs64)
        return "\n".join(lines) + "\n"

    @staticmethod
    def _segment(name: str, seg: KvmSegment, lma: bool, protected: bool) -> str:
        flags = segment_flags(seg)
        base = f"{seg.base:016x}" if lma else f"{seg.base & 0xFFFFFFFF:08x}"
        text = f"{name}={seg.selector:04x} {base} {seg.limit:08x} {flags:08x}"
        if not protected or not flags & _DESC_P:
            return text
        text += f" DPL={seg.dpl} "
        if flags & _DESC_S:
            if flags & _DESC_CS:
                text += "CS64" if flags & _DESC_L else "CS32" if flags & _DESC_B else "CS16"
                text += (f" [{'C' if flags & _DESC_C_E else '-'}"
                         f"{'R' if flags & _DESC_W_R else '-'}")
            else:
                text += "DS  " if flags & _DESC_B or lma else "DS16"
                text += (f" [{'E' if flags & _DESC_C_E else '-'}"
                         f"{'W' if flags & _DESC_W_R else '-'}")
            text += f"{'A' if flags & _DESC_A else '-'}]"
        else:
            text += _SYS_TYPES[1 if lma else 0][seg.type & 0xF]
        return text

    def _fpu_lines(self, cs64: bool) -> list[str]:
        fpu = self.cpu.vcpu.get_fpu()
        top = (fpu.fsw >> 11) & 7
        lines = [f"FCW={fpu.fcw:04x} FSW={fpu.fsw:04x} [ST={top}] FTW={fpu.ftwx:02x} "
                 f"MXCSR={fpu.mxcsr:08x}"]
        fpr = [bytes(fpu.fpr[i]) for i in range(8)]
        for i in range(0, 8, 2):
            lines.append(" ".join(
                f"FPR{j}={int.from_bytes(fpr[j][:8], 'little'):016x} "
                f"{int.from_bytes(fpr[j][8:10], 'little'):04x}" for j in (i, i + 1)))
        count = 16 if cs64 else 8
        xmm = [bytes(fpu.xmm[i]) for i in range(count)]
        for i in range(0, count, 2):
            lines.append(" ".join(
                f"XMM{j:02d}={int.from_bytes(xmm[j][8:], 'little'):016x} "
                f"{int.from_bytes(xmm[j][:8], 'little'):016x}" for j in (i, i + 1)))
        return lines

    # -- address translation ----------------------------------------------------------
    def translate(self, vaddr: int, cpu: int,
                  read_physical: Callable[[int, int], bytes]) -> int:
        """A linear address through the current page tables (4- or 5-level with
        long mode, PAE, or 32-bit paging with PSE); the identity with paging off."""
        self._check(cpu)
        sregs = self.cpu.vcpu.get_sregs()
        if not sregs.cr0 & _CR0_PG:
            return vaddr & 0xFFFFFFFF if not sregs.efer & _EFER_LMA else vaddr
        if sregs.cr4 & _CR4_PAE:
            if sregs.efer & _EFER_LMA:
                levels = 5 if sregs.cr4 & _CR4_LA57 else 4
                table = sregs.cr3 & 0x000FFFFFFFFFF000
            else:  # PAE: 4 PDPTEs at CR3 (32-byte aligned), then 2 levels
                vaddr &= 0xFFFFFFFF
                pdpte = int.from_bytes(read_physical((sregs.cr3 & 0xFFFFFFE0)
                                                     + (vaddr >> 30) * 8, 8), "little")
                if not pdpte & 1:
                    raise MonitorError("Cannot access memory")
                levels, table = 2, pdpte & 0x000FFFFFFFFFF000
            for level in reversed(range(levels)):
                shift = 12 + 9 * level
                entry = int.from_bytes(read_physical(
                    table + ((vaddr >> shift) & 0x1FF) * 8, 8), "little")
                if not entry & 1:
                    break
                address = entry & 0x000FFFFFFFFFF000
                if level == 0 or (level in (1, 2) and entry & 0x80):  # a page (PS)
                    mask = (1 << shift) - 1
                    return (address & ~mask) | (vaddr & mask)
                table = address
            raise MonitorError("Cannot access memory")
        vaddr &= 0xFFFFFFFF  # 32-bit paging
        pde = int.from_bytes(read_physical((sregs.cr3 & 0xFFFFF000) + (vaddr >> 22) * 4, 4),
                             "little")
        if not pde & 1:
            raise MonitorError("Cannot access memory")
        if pde & 0x80 and sregs.cr4 & _CR4_PSE:  # a 4 MiB page (bits 13-20: PA 32-39)
            return ((pde & 0xFFC00000) | ((pde >> 13) & 0xFF) << 32) | (vaddr & 0x3FFFFF)
        pte = int.from_bytes(read_physical((pde & 0xFFFFF000) + ((vaddr >> 12) & 0x3FF) * 4,
                                           4), "little")
        if not pte & 1:
            raise MonitorError("Cannot access memory")
        return (pte & 0xFFFFF000) | (vaddr & 0xFFF)
