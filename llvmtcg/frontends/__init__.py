"""Guest instruction-set frontends; one package per ISA."""
