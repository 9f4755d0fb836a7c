"""The runtime: JIT engine, translation-block cache with chaining, softmmu, run loop."""
