"""AArch64 (A64) frontend.

Decoding is data: :mod:`.insn` holds the pattern table (decodetree format, one line per
encoding class member), bound to the ``trans_*`` translators of the ``trans_*.py``
modules by :func:`.frontend.decoder`. Encodings without a pattern, or whose translator
returns False, are unallocated: the frontend raises UNDEF for them in one place.
"""
