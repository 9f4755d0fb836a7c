"""Native code without LLJIT: an executable arena, an ELF relocatable-object loader and
copy-and-patch stencils (the foundations of the baseline tier, issue 10).

Nothing here imports llvmlite at import time; only building a stencil library does
(lazily), so a run that loads cached code needs no LLVM.
"""
