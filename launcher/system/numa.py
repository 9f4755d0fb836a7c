"""``-numa`` and the ``-object memory-backend-ram`` it names, checked as QEMU 7.2 does
(hw/core/numa.c, qom/object_interfaces.c): each mistake is QEMU's message, raised as
OptionError with the option text QEMU prefixes."""

from __future__ import annotations

from collections.abc import Callable

from launcher.system.options import OptionError, parse_list, parse_ram_size
from machines.numa import LOCAL_DISTANCE, NumaConfig, NumaNode

MAX_NODES = 128  # MAX_NODES
_NODE_KEYS = ("type", "nodeid", "cpus", "mem", "memdev", "initiator")
_DIST_KEYS = ("type", "src", "dst", "val")
_BACKEND_KEYS = ("qom-type", "id", "size", "share", "merge", "dump", "prealloc",
                 "policy", "host-nodes", "reserve")


def check_objects(texts: list[str]) -> dict[str, int]:
    """``-object memory-backend-ram,id=ID,size=SIZE``: the backends' sizes by id (the
    only object type -numa memdev= needs; others are refused)."""
    backends: dict[str, int] = {}
    for text in texts:
        option = f"-object {text}"
        parsed = parse_list(text, option, "qom-type")
        if parsed.implied != "memory-backend-ram":
            raise OptionError(f"invalid object type: {parsed.implied}", option)
        for key, _ in parsed.pairs:
            if key not in _BACKEND_KEYS:
                raise OptionError(f"Property '{parsed.implied}.{key}' not found", option)
        backend_id = parsed.get("id")
        if backend_id is None:
            raise OptionError("Parameter 'id' is missing", option)
        if backend_id in backends:
            raise OptionError(f"attempt to add duplicate property '{backend_id}' to object "
                              "(type 'container')", option)
        size_text = parsed.get("size")
        if size_text is None:
            raise OptionError("can't create backend with size 0", option)
        try:
            size = _size(size_text)
        except ValueError:
            raise OptionError("Parameter 'size' expects a non-negative number below 2^64",
                              option) from None
        if size == 0:
            raise OptionError("can't create backend with size 0", option)
        backends[backend_id] = size
    return backends


def check_numa(texts: list[str], backends: dict[str, int], num_harts: int,
               ram_size: int, warn: Callable[[str], None]) -> NumaConfig | None:
    """The ``-numa`` options as one NumaConfig (None without any), for ``num_harts``
    harts and ``ram_size`` bytes of RAM (QEMU's parse_numa, numa_complete_configuration
    and machine_numa_finish_cpu_init). ``warn`` gets QEMU's warnings as they follow
    the program name."""
    if not texts:
        return None
    nodes: dict[int, tuple[list[int], int | None, str | None]] = {}  # id -> harts, mem, memdev
    distances: dict[tuple[int, int], int] = {}
    for text in texts:
        option = f"-numa {text}"
        parsed = parse_list(text, option, "type")
        kind = parsed.implied if parsed.implied is not None else parsed.get("type")
        if kind == "node":
            _node(parsed, option, nodes, num_harts, backends, warn)
        elif kind == "dist":
            _dist(parsed, option, nodes, distances)
        elif kind is None:
            raise OptionError("Parameter 'type' is missing", option)
        else:
            raise OptionError(f"Parameter 'type' does not accept value '{kind}'", option)
    # numa_complete_configuration: node ids must have no holes.
    for node_id in range(len(nodes)):
        if node_id not in nodes:
            raise OptionError(f"numa: Node ID missing: {node_id}")
    with_memdev = [memdev is not None for _, _, memdev in nodes.values()]
    if any(with_memdev) and not all(with_memdev):
        raise OptionError("qemu: memdev option must be specified for either all or no nodes")
    total = sum((backends[memdev] if memdev is not None else mem or 0)
                for _, mem, memdev in nodes.values())
    if total != ram_size:
        raise OptionError(f"total memory for NUMA nodes ({total:#x}) should equal RAM size "
                          f"({ram_size:#x})")
    if distances:
        distances = _complete_distances(distances, len(nodes))
    _assign_harts(nodes, num_harts, warn)
    return NumaConfig(
        tuple(NumaNode(node_id, tuple(harts),
                       backends[memdev] if memdev is not None else mem or 0)
              for node_id, (harts, mem, memdev) in sorted(nodes.items())),
        distances)


def _size(text: str) -> int:
    """A QEMU size property (bytes without a suffix, unlike -m)."""
    text = text.strip()
    suffixes = {"": 1, "B": 1, "K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30,
                "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
    number = text.rstrip("BKkMGTPE")
    suffix = text[len(number):]
    if suffix not in suffixes or not number:
        raise ValueError(text)
    value = float(number) if not number.startswith("0x") else int(number, 16)
    size = int(value * suffixes[suffix])
    if size < 0 or size >= 1 << 64:
        raise ValueError(text)
    return size


def _int(parsed_value: str | None, key: str, option: str) -> int | None:
    if parsed_value is None:
        return None
    try:
        value = int(parsed_value, 0)
    except ValueError:
        raise OptionError(f"Parameter '{key}' expects uint16_t" if key != "val" else
                          f"Parameter '{key}' expects uint8_t", option) from None
    return value


def _node(parsed, option: str, nodes: dict, num_harts: int, backends: dict[str, int],
          warn: Callable[[str], None]) -> None:
    for key, _ in parsed.pairs:
        if key not in _NODE_KEYS:
            raise OptionError(f"Invalid parameter '{key}'", option)
    node_id = _int(parsed.get("nodeid"), "nodeid", option)
    if node_id is None:
        node_id = len(nodes)
    if node_id >= MAX_NODES:
        raise OptionError(f"Max number of NUMA nodes reached: {node_id}", option)
    if node_id in nodes:
        raise OptionError(f"Duplicate NUMA nodeid: {node_id}", option)
    harts: list[int] = []
    for name, value in parsed.pairs:  # cpus= may be given several times
        if name != "cpus":
            continue
        first, _, last = value.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise OptionError("Parameter 'cpus' expects an int64 value or range",
                              option) from None
        if high < low:
            raise OptionError("Parameter 'cpus' expects an int64 value or range", option)
        for hart in range(low, high + 1):
            if hart >= num_harts:
                raise OptionError(f"CPU index ({hart}) should be smaller than maxcpus "
                                  f"({num_harts})", option)
            owner = next((other for other, (taken, _, _) in nodes.items() if hart in taken),
                         node_id if hart in harts else None)
            if owner is not None:
                raise OptionError(f"CPU is already assigned to node-id: {owner}", option)
            harts.append(hart)
    mem_text, memdev = parsed.get("mem"), parsed.get("memdev")
    if mem_text is not None and memdev is not None:
        raise OptionError("numa configuration should use either mem= or memdev=,mixing "
                          "both is not allowed", option)
    mem = None
    if mem_text is not None:
        warn_text = "Parameter -numa node,mem is deprecated, use -numa node,memdev instead"
        try:
            mem = parse_ram_size(mem_text)  # (MiB without a suffix, as -m)
        except ValueError:
            raise OptionError("Parameter 'mem' expects a non-negative number below 2^64",
                              option) from None
        warn(f"{option}: warning: {warn_text}")
    if memdev is not None and memdev not in backends:
        raise OptionError(f"memdev={memdev} is ambiguous", option)
    nodes[node_id] = (harts, mem, memdev)


def _dist(parsed, option: str, nodes: dict, distances: dict[tuple[int, int], int]) -> None:
    for key, _ in parsed.pairs:
        if key not in _DIST_KEYS:
            raise OptionError(f"Invalid parameter '{key}'", option)
    src, dst = _int(parsed.get("src"), "src", option), _int(parsed.get("dst"), "dst", option)
    val = _int(parsed.get("val"), "val", option)
    for key, value in (("src", src), ("dst", dst), ("val", val)):
        if value is None:
            raise OptionError(f"Parameter '{key}' is missing", option)
    assert src is not None and dst is not None and val is not None
    if src >= MAX_NODES or dst >= MAX_NODES:
        raise OptionError(f"Parameter '{'src' if src >= MAX_NODES else 'dst'}' expects an "
                          f"int64 value in range [0, {MAX_NODES - 1}]", option)
    if src not in nodes or dst not in nodes:
        raise OptionError("Source/Destination NUMA node is missing. Please use '-numa node' "
                          "option to declare it first.", option)
    if val < LOCAL_DISTANCE:
        raise OptionError(f"NUMA distance ({val}) is invalid, it shouldn't be less than "
                          f"{LOCAL_DISTANCE}.", option)
    if src == dst and val != LOCAL_DISTANCE:
        raise OptionError(f"Local distance of node {src} should be {LOCAL_DISTANCE}.", option)
    distances[(src, dst)] = val


def _complete_distances(given: dict[tuple[int, int], int],
                        count: int) -> dict[tuple[int, int], int]:
    """validate_numa_distance + complete_init_numa_distance: a pair given one way
    holds both ways, a pair given neither way is an error; local distances are 10."""
    asymmetric = any(given.get((dst, src), value) != value
                     for (src, dst), value in given.items())
    out = dict(given)
    for src in range(count):
        for dst in range(src, count):
            if src == dst:
                out.setdefault((src, dst), LOCAL_DISTANCE)
                continue
            there, back = given.get((src, dst)), given.get((dst, src))
            if there is None and back is None:
                raise OptionError(f"The distance between node {src} and {dst} is missing, at "
                                  "least one distance value between each nodes should be "
                                  "provided.")
            if asymmetric and (there is None or back is None):
                raise OptionError("At least one asymmetrical pair of distances is given, "
                                  "please provide distances for both directions of all "
                                  "node pairs.")
            out[(src, dst)] = there if there is not None else back  # type: ignore[assignment]
            out[(dst, src)] = back if back is not None else there  # type: ignore[assignment]
    return out


def _assign_harts(nodes: dict, num_harts: int, warn: Callable[[str], None]) -> None:
    """machine_numa_finish_cpu_init: with no hart in any node, hart i goes to node
    i / (harts / nodes) (riscv_numa_get_default_cpu_node_id); otherwise harts in no
    node go to node 0, with QEMU's two warnings."""
    assigned = {hart for harts, _, _ in nodes.values() for hart in harts}
    count = len(nodes)
    if not assigned:
        per_node = max(1, num_harts // count)
        for hart in range(num_harts):
            nodes[min(hart // per_node, count - 1)][0].append(hart)
        return
    missing = [hart for hart in range(num_harts) if hart not in assigned]
    if not missing:
        return
    listed = ", ".join(f"CPU {hart} [core-id: {hart}]" for hart in missing)
    warn(f"warning: CPU(s) not present in any NUMA nodes: {listed}")
    warn("warning: All CPU(s) up to maxcpus should be described in NUMA config, ability to "
         "start up with partial NUMA mappings is obsoleted and will be removed in future")
    nodes[0][0].extend(missing)
