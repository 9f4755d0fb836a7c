"""The block layer's one exception type."""

from __future__ import annotations

import errno


class BlockError(OSError):
    """A block-layer failure a user can act on: a one-line ``message`` (``str(error)``)
    and an optional ``hint`` for a second line, as QEMU prints them.

    It is an OSError so that a device model treats one raised during I/O (an image found
    corrupt, a node made unusable) as an I/O error to the guest, like any host failure.
    """

    def __init__(self, message: str, code: int = errno.EINVAL, hint: str = "") -> None:
        super().__init__(code, message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message
