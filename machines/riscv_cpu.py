"""RISC-V CPU models as ``-cpu`` names them: QEMU 7.2's ``rv64`` and its properties.

The property table is QEMU's (``riscv_cpu_extensions[]`` in target/riscv/cpu.c: names,
types, defaults), so ``-cpu rv64,zba=off`` means what it means there, and the ISA
string written to the device tree is built the way ``riscv_isa_string`` builds it. The
checks are those of ``riscv_cpu_realize`` that concern the options a user can set,
with QEMU's messages. Which of these extensions the system-mode CPU implements is its
own business: it receives the resolved :class:`RiscvCpuConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class CpuOptionError(ValueError):
    """A -cpu option QEMU would refuse, with QEMU's message."""


@dataclass(frozen=True, slots=True)
class CpuProperty:
    name: str
    kind: str  # "bool", "uint8", "uint16" or "str" (QEMU's qdev property types)
    default: bool | int | str | None


def _props(kind: str, *entries: tuple[str, bool | int | str | None]) -> list[CpuProperty]:
    return [CpuProperty(name, kind, default) for name, default in entries]


# QEMU 7.2 riscv_cpu_extensions[], in its order.
RV64_PROPERTIES: tuple[CpuProperty, ...] = tuple(
    _props("bool", ("i", True), ("e", False), ("g", False), ("m", True), ("a", True),
           ("f", True), ("d", True), ("c", True), ("s", True), ("u", True), ("v", False),
           ("h", True))
    + _props("uint8", ("pmu-num", 16))
    + _props("bool", ("sscofpmf", False), ("Zifencei", True), ("Zicsr", True),
             ("Zihintpause", True), ("Zfh", False), ("Zfhmin", False), ("Zve32f", False),
             ("Zve64f", False), ("mmu", True), ("pmp", True), ("sstc", True))
    + _props("str", ("priv_spec", None), ("vext_spec", None))
    + _props("uint16", ("vlen", 128), ("elen", 64))
    + _props("bool", ("svinval", False), ("svnapot", False), ("svpbmt", False),
             ("zba", True), ("zbb", True), ("zbc", True), ("zbkb", False), ("zbkc", False),
             ("zbkx", False), ("zbs", True), ("zk", False), ("zkn", False), ("zknd", False),
             ("zkne", False), ("zknh", False), ("zkr", False), ("zks", False),
             ("zksed", False), ("zksh", False), ("zkt", False), ("zdinx", False),
             ("zfinx", False), ("zhinx", False), ("zhinxmin", False), ("zmmul", False),
             ("xventanacondops", False), ("x-j", False), ("x-epmp", False),
             ("x-smaia", False), ("x-ssaia", False)))

_BY_NAME = {p.name: p for p in RV64_PROPERTIES}

# riscv_single_letter_exts: the misa letters riscv_isa_string prints, in its order.
_SINGLE_LETTERS = "iemafdqcpvh"

# isa_edata_arr: multi-letter extensions in ISA-string order, with the property that
# enables each and the privileged spec version it needs (1.10 = 10, 1.12 = 12).
_MULTI_LETTER: tuple[tuple[str, str, int], ...] = (
    ("zicsr", "Zicsr", 10), ("zifencei", "Zifencei", 10), ("zihintpause", "Zihintpause", 10),
    ("zfh", "Zfh", 12), ("zfhmin", "Zfhmin", 12), ("zfinx", "zfinx", 12),
    ("zdinx", "zdinx", 12), ("zba", "zba", 12), ("zbb", "zbb", 12), ("zbc", "zbc", 12),
    ("zbkb", "zbkb", 12), ("zbkc", "zbkc", 12), ("zbkx", "zbkx", 12), ("zbs", "zbs", 12),
    ("zk", "zk", 12), ("zkn", "zkn", 12), ("zknd", "zknd", 12), ("zkne", "zkne", 12),
    ("zknh", "zknh", 12), ("zkr", "zkr", 12), ("zks", "zks", 12), ("zksed", "zksed", 12),
    ("zksh", "zksh", 12), ("zkt", "zkt", 12), ("zve32f", "Zve32f", 12),
    ("zve64f", "Zve64f", 12), ("zhinx", "zhinx", 12), ("zhinxmin", "zhinxmin", 12),
    ("smaia", "x-smaia", 12), ("ssaia", "x-ssaia", 12), ("sscofpmf", "sscofpmf", 12),
    ("sstc", "sstc", 12), ("svinval", "svinval", 12), ("svnapot", "svnapot", 12),
    ("svpbmt", "svpbmt", 12), ("xventanacondops", "xventanacondops", 12))
# h and v are single letters but also carry a minimum spec version (1.12).
_VERSIONED_LETTERS = (("h", 12), ("v", 12))

_PRIV_SPECS = {"v1.12.0": 12, "v1.11.0": 11, "v1.10.0": 10}

CPU_MODELS = ("rv64",)  # what -cpu help lists
DEFAULT_CPU_MODEL = "rv64"

_TRUE_WORDS = ("on", "yes", "true", "y")
_FALSE_WORDS = ("off", "no", "false", "n")
_INT_LIMITS = {"uint8": (0xFF, "uint8_t"), "uint16": (0xFFFF, "uint16_t")}


def parse_bool(name: str, text: str) -> bool:
    """A QEMU boolean property value."""
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise CpuOptionError(f"Parameter '{name}' expects 'on' or 'off'")


def _parse_value(prop: CpuProperty, text: str) -> bool | int | str:
    if prop.kind == "bool":
        return parse_bool(prop.name, text)
    if prop.kind == "str":
        return text
    limit, type_name = _INT_LIMITS[prop.kind]
    try:
        value = int(text, 0)
    except ValueError:
        raise CpuOptionError(f"Parameter '{prop.name}' expects uint64") from None
    if not 0 <= value <= limit:
        raise CpuOptionError(f"Parameter '{prop.name}' expects {type_name}")
    return value


@dataclass(frozen=True, slots=True)
class RiscvCpuConfig:
    """A resolved ``-cpu`` model: every property's value after QEMU's realize rules,
    and the warnings QEMU prints while applying them."""

    model: str = DEFAULT_CPU_MODEL
    values: dict[str, bool | int | str | None] = field(
        default_factory=lambda: {p.name: p.default for p in RV64_PROPERTIES})
    warnings: tuple[str, ...] = ()

    @classmethod
    def parse(cls, model: str, options: list[tuple[str, str]], hartid: int = 0) -> RiscvCpuConfig:
        """``-cpu model,name=value,...``; raises CpuOptionError with QEMU's wording."""
        if model not in CPU_MODELS:
            raise CpuOptionError(f"unable to find CPU model '{model}'")
        values: dict[str, bool | int | str | None] = {p.name: p.default for p in RV64_PROPERTIES}
        for name, text in options:
            prop = _BY_NAME.get(name)
            if prop is None:
                raise CpuOptionError(f"can't apply global {model}-riscv-cpu.{name}={text}: "
                                     f"Property '{model}-riscv-cpu.{name}' not found")
            try:
                values[name] = _parse_value(prop, text)
            except CpuOptionError as exc:
                raise CpuOptionError(f"can't apply global {model}-riscv-cpu.{name}={text}: "
                                     f"{exc}") from None
        warnings = _realize(values, hartid)
        return cls(model, values, tuple(warnings))

    def enabled(self, name: str) -> bool:
        return bool(self.values[name])

    @property
    def pmu_counters(self) -> int:
        return int(self.values["pmu-num"])  # type: ignore[arg-type]

    @property
    def has_mmu(self) -> bool:
        return self.enabled("mmu")

    def isa_string(self) -> str:
        """The device tree's ``riscv,isa``, as QEMU 7.2's riscv_isa_string builds it."""
        letters = "".join(c for c in _SINGLE_LETTERS if c in _BY_NAME and self.enabled(c))
        multi = "".join(f"_{ext}" for ext, prop, _ in _MULTI_LETTER if self.enabled(prop))
        return f"rv64{letters}{multi}"


def _realize(values: dict[str, bool | int | str | None], hartid: int) -> list[str]:
    """Apply riscv_cpu_realize's option rules to ``values`` in place; returns the
    warnings QEMU prints, raises CpuOptionError for what it refuses."""
    warnings: list[str] = []
    spec = values["priv_spec"]
    priv_version = 12
    if spec is not None:
        if spec not in _PRIV_SPECS:
            raise CpuOptionError(f"Unsupported privilege spec version '{spec}'")
        priv_version = _PRIV_SPECS[str(spec)]
    for name, needs in _VERSIONED_LETTERS + tuple((e, v) for e, _, v in _MULTI_LETTER):
        prop = name if name in _BY_NAME else next(p for e, p, _ in _MULTI_LETTER if e == name)
        if values[prop] and priv_version < needs:
            values[prop] = False
            warnings.append(f"disabling {name} extension for hart {hartid:#x} because "
                            f"privilege spec version does not match")

    def on(name: str) -> bool:
        return bool(values[name])

    if on("g") and not all(on(n) for n in ("i", "m", "a", "f", "d", "Zicsr", "Zifencei")):
        warnings.append("Setting G will also set IMAFD_Zicsr_Zifencei")
        for n in ("i", "m", "a", "f", "d", "Zicsr", "Zifencei"):
            values[n] = True
    rules = (
        (on("i") and on("e"), "I and E extensions are incompatible"),
        (not on("i") and not on("e"), "Either I or E extension must be set"),
        (on("s") and not on("u"), "Setting S extension without U extension is illegal"),
        (on("h") and not on("i"), "H depends on an I base integer ISA with 32 x registers"),
        (on("h") and not on("s"), "H extension implicitly requires S-mode"),
        (on("f") and not on("Zicsr"), "F extension requires Zicsr"),
        ((on("Zfh") or on("Zfhmin")) and not on("f"), "Zfh/Zfhmin extensions require F extension"),
        (on("d") and not on("f"), "D extension requires F extension"),
        (on("v") and not on("d"), "V extension requires D extension"),
        ((on("Zve32f") or on("Zve64f")) and not on("f"),
         "Zve32f/Zve64f extensions require F extension"),
    )
    for broken, message in rules:
        if broken:
            raise CpuOptionError(message)
    if on("zdinx") or on("zhinx") or on("zhinxmin"):
        values["zfinx"] = True
    if on("zfinx"):
        if not on("Zicsr"):
            raise CpuOptionError("Zfinx extension requires Zicsr")
        if on("f"):
            raise CpuOptionError("Zfinx cannot be supported together with F extension")
    implied = {"zk": ("zkn", "zkr", "zkt"),
               "zkn": ("zbkb", "zbkc", "zbkx", "zkne", "zknd", "zknh"),
               "zks": ("zbkb", "zbkc", "zbkx", "zksed", "zksh")}
    for name, extras in implied.items():
        if on(name):
            for extra in extras:
                values[extra] = True
    if on("v"):
        vlen, elen = int(values["vlen"]), int(values["elen"])  # type: ignore[arg-type]
        if vlen & (vlen - 1) or vlen == 0:
            raise CpuOptionError("Vector extension VLEN must be power of 2")
        if not 128 <= vlen <= 1024:
            raise CpuOptionError("Vector extension implementation only supports VLEN "
                                 "in the range [128, 1024]")
        if elen & (elen - 1) or elen == 0:
            raise CpuOptionError("Vector extension ELEN must be power of 2")
        if elen > 64 or vlen < 8:
            raise CpuOptionError("Vector extension implementation only supports ELEN "
                                 "in the range [8, 64]")
        if values["vext_spec"] not in (None, "v1.0"):
            raise CpuOptionError(f"Unsupported vector spec version '{values['vext_spec']}'")
    return warnings


def pmu_event_map(counters: int) -> list[int]:
    """The ``riscv,event-to-mhpmcounters`` cells QEMU 7.2 writes for ``pmu-num``
    programmable counters (riscv_pmu_generate_fdt_node: cycles, instructions and the
    DTLB/ITLB miss events, any counter from 3 up; a 20-cell array, unused cells 0)."""
    mask = ((1 << counters) - 1) << 3 if counters else 0
    cells = [0x1, 0x1, mask | 1 << 0,  # SBI_PMU_HW_CPU_CYCLES (also mcycle)
             0x2, 0x2, mask | 1 << 2,  # SBI_PMU_HW_INSTRUCTIONS (also minstret)
             0x10019, 0x10019, mask,  # DTLB read miss
             0x1001B, 0x1001B, mask,  # DTLB write miss
             0x10021, 0x10021, mask]  # ITLB read miss
    return [c & 0xFFFF_FFFF for c in cells] + [0] * 5
