"""``python -m llvmtcg.user PROG ARGS...``: the same as ``llvmtcg-user``."""

from llvmtcg.user.cli import main

main()
