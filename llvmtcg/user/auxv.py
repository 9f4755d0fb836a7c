"""What the kernel told this process in its auxiliary vector about how binfmt_misc
started it (see :mod:`llvmtcg.user.binfmt`). A module of its own: every llvmtcg-user
start asks, and importing the binfmt tool itself (its records, its option parsing) is
not needed for that."""

from __future__ import annotations

import ctypes

AT_EXECFD, AT_FLAGS = 2, 8
AT_FLAGS_PRESERVE_ARGV0 = 1  # (include/uapi/linux/binfmts.h)


def auxval(kind: int) -> int:
    """The host's auxiliary-vector entry ``kind`` for this process (0: absent)."""
    getauxval = ctypes.CDLL(None, use_errno=True).getauxval
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    return int(getauxval(kind))


def preserved_argv0() -> bool:
    """Was this process started by binfmt_misc with the ``P`` flag? (Then its
    arguments after the options are the program's path, its original argv[0], and
    its arguments.)"""
    return bool(auxval(AT_FLAGS) & AT_FLAGS_PRESERVE_ARGV0)


def exec_fd() -> int | None:
    """The program's fd binfmt_misc opened for us (``O``/``C`` flags), or None."""
    fd = auxval(AT_EXECFD)
    return fd or None
