"""Entry point of ``llvmtcg-user`` (the CLI itself lives in :mod:`llvmtcg.user.cli`, so
``python -m llvmtcg.user`` works without the launcher package)."""

from llvmtcg.user.cli import main

__all__ = ["main"]
