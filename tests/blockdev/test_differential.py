"""Differential test: random operation sequences on a qcow2 node and on a bytearray
model read the same, and the image stays consistent for qemu-img."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from blockdev import BlockNode, Qcow2Node, create_qcow2, open_node  # noqa: E402
from tests.blockdev.support import (  # noqa: E402
    assert_consistent,
    assert_same_as_raw,
    requires_qemu_img,
)

SIZE = 96 * 1024
CLUSTER = 1024

offsets = st.integers(0, SIZE - 1)
lengths = st.integers(1, 20_000)


class Qcow2AgainstModel(RuleBasedStateMachine):
    """The node under test has 1 KiB clusters, 8-bit refcounts, a backing file and
    two-table caches, so that COW, backing reads, evictions and refcount growth all
    happen within short sequences."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="blockdev-hypothesis-"))
        self.image = self.directory / "image.qcow2"
        self.snapshots: dict[str, bytes] = {}
        self.node: BlockNode | None = None

    @initialize(version=st.sampled_from([2, 3]), backing=st.booleans(),
                refcount_bits=st.sampled_from([8, 16, 64]))
    def create(self, version: int, backing: bool, refcount_bits: int) -> None:
        self.version = version
        self.model = bytearray(SIZE)
        backing_file = None
        if backing:
            base = self.directory / "base.raw"
            self.model[:] = bytes(i * 7 % 251 for i in range(SIZE))
            base.write_bytes(self.model[:SIZE - 5000])  # shorter than the overlay
            self.model[SIZE - 5000:] = bytes(5000)
            backing_file = base.name
        self.has_backing = backing
        create_qcow2(self.image, SIZE, version=version, cluster_size=CLUSTER,
                     refcount_bits=refcount_bits if version >= 3 else 16, backing_file=backing_file,
                     backing_format="raw" if backing else None)
        self.reopen()

    def reopen(self) -> None:
        if self.node is not None:
            self.node.close()
        self.node = open_node({"driver": "qcow2", "discard": "unmap",
                               "l2-cache-size": 2 * CLUSTER,
                               "refcount-cache-size": 2 * CLUSTER,
                               "file": {"driver": "file", "filename": str(self.image)}})

    @property
    def qcow2(self) -> Qcow2Node:
        assert isinstance(self.node, Qcow2Node)
        return self.node

    @rule(offset=offsets, length=lengths, byte=st.integers(0, 255))
    def write(self, offset: int, length: int, byte: int) -> None:
        length = min(length, SIZE - offset)
        data = bytes((byte + i) % 256 for i in range(length))
        self.qcow2.write(offset, data)
        self.model[offset:offset + length] = data

    @rule(offset=offsets, length=lengths, may_unmap=st.booleans())
    def write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        length = min(length, SIZE - offset)
        self.qcow2.write_zeroes(offset, length, may_unmap)
        self.model[offset:offset + length] = bytes(length)

    @rule(offset=offsets, length=lengths)
    def discard(self, offset: int, length: int) -> None:
        length = min(length, SIZE - offset)
        self.qcow2.discard(offset, length)
        start = -(-offset // CLUSTER) * CLUSTER
        end = (offset + length) // CLUSTER * CLUSTER if offset + length < SIZE else SIZE
        if end > start:
            # Version 3 marks them zero; version 2 has no zero flag and lets the
            # backing file show through again (the contents are undefined after a
            # discard: both are what QEMU does).
            if self.version >= 3 or not self.has_backing:
                self.model[start:end] = bytes(end - start)
            else:
                self.model[start:end] = self.qcow2.read(start, end - start)

    @rule()
    def flush(self) -> None:
        self.qcow2.flush()

    @rule()
    def close_and_reopen(self) -> None:
        self.reopen()

    @precondition(lambda self: len(self.snapshots) < 4)
    @rule(name=st.sampled_from(["a", "b", "c", "d"]))
    def create_snapshot(self, name: str) -> None:
        if name in self.snapshots:
            return
        self.qcow2.create_snapshot(name)
        self.snapshots[name] = bytes(self.model)

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def apply_snapshot(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.snapshots)))
        self.qcow2.apply_snapshot(name)
        self.model[:] = self.snapshots[name]

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def delete_snapshot(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.snapshots)))
        self.qcow2.delete_snapshot(name)
        del self.snapshots[name]

    @invariant()
    def reads_like_the_model(self) -> None:
        if self.node is not None:
            assert self.node.read(0, SIZE) == self.model

    def teardown(self) -> None:
        if self.node is not None:
            self.node.close()
            assert_consistent(self.image)
            assert_same_as_raw(self.image, bytes(self.model), self.directory)
        for path in sorted(self.directory.iterdir()):
            path.unlink()
        self.directory.rmdir()


Qcow2AgainstModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_qcow2_against_model = requires_qemu_img(Qcow2AgainstModel.TestCase)
