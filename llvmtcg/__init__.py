"""llvmtcg: guest machine code -> TCG-like IR -> LLVM IR -> native code."""
