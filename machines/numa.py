"""NUMA nodes as the machine sees them (``-numa``), and the RISC-V sockets they make.

QEMU 7.2's RISC-V boards turn each NUMA node into a *socket* (hw/riscv/numa.c): the
harts of node i are socket i, which gets its own CLINT and PLIC and ``cpu-map``
cluster, and node i's memory follows node i-1's from the start of RAM. A socket's
harts must be consecutive hart ids ("discontinuous hartids in socket%d"). Without
``-numa`` there is one socket with every hart and no ``numa-node-id`` properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LOCAL_DISTANCE = 10  # NUMA_DISTANCE_MIN: a node's distance to itself


class NumaError(Exception):
    """A NUMA layout the machine cannot build (QEMU's wording)."""


@dataclass(frozen=True, slots=True)
class NumaNode:
    """One ``-numa node``: its harts and the bytes of RAM it owns."""

    node_id: int
    harts: tuple[int, ...]
    mem: int


@dataclass(frozen=True, slots=True)
class NumaConfig:
    """Every node, by node id (0..n-1), and the distances (``-numa dist``) when any
    were given: every ordered pair then has one (QEMU completes the matrix)."""

    nodes: tuple[NumaNode, ...]
    distances: Mapping[tuple[int, int], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Socket:
    """A RISC-V socket: ``node`` (None without -numa), its first hart and hart count,
    and the RAM it owns (offset from the start of RAM, size)."""

    index: int
    node: int | None
    first_hart: int
    num_harts: int
    mem_offset: int
    mem_size: int

    @property
    def harts(self) -> range:
        return range(self.first_hart, self.first_hart + self.num_harts)


def sockets(numa: NumaConfig | None, num_harts: int, ram_size: int) -> list[Socket]:
    """The sockets of a board with ``num_harts`` harts (hw/riscv/numa.c's
    riscv_socket_*). Raises NumaError for a node whose harts are not consecutive."""
    if numa is None:
        return [Socket(0, None, 0, num_harts, 0, ram_size)]
    out, offset = [], 0
    for node in numa.nodes:
        harts = sorted(node.harts)
        if not harts:
            # (riscv_socket_check_hartids: a socket without harts has no first one)
            raise NumaError(f"discontinuous hartids in socket{node.node_id}")
        if harts != list(range(harts[0], harts[-1] + 1)):
            raise NumaError(f"discontinuous hartids in socket{node.node_id}")
        out.append(Socket(node.node_id, node.node_id, harts[0], len(harts), offset, node.mem))
        offset += node.mem
    return out
