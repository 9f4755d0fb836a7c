"""Writing a cache file so that readers never see half of it.

The code cache's entries, the stencil library, the stored op emitters and the baseline
block files are all written the same way: into a temporary file in the target's
directory, then renamed over the target (``os.replace`` is atomic on POSIX), so a
concurrent reader or writer sees the old file or the new one whole. They are caches:
a write that fails leaves the old file (or none) and raises nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def replace_file(path: Path, parts: Iterable[bytes], checksum: bool = False) -> bool:
    """Write ``parts`` to ``path`` atomically; with ``checksum``, the SHA-256 digest of
    everything written follows it (the readers check it). Returns False, with the
    temporary file removed, when the directory is not writable or the write fails."""
    import tempfile  # noqa: PLC0415 - writers only (importing it costs ~10 ms)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return False
    try:
        digest = hashlib.sha256() if checksum else None
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                if digest is not None:
                    digest.update(part)
                f.write(part)
            if digest is not None:
                f.write(digest.digest())
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
