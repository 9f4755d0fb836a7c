"""The RISC-V privileged architecture as a pure-Python model (Privileged Spec 20211203).

- :mod:`.state`: privilege levels, cause codes, mstatus fields, MMU indices, TB flags,
  and the :class:`~.state.Trap` exceptions;
- :mod:`.csr`: :class:`~.csr.CsrFile`, the hart's privilege level and CSRs with their
  access rules;
- :mod:`.trap`: trap entry/return, interrupt selection, privileged-instruction checks;
- :mod:`.mmu`: Sv39/Sv48/Sv57 walks with A/D updates and PMP;
- :mod:`.pmp`: physical memory protection.

Nothing here touches translated code: the translator's helpers and the system-mode
run loop call these functions and apply the :class:`~.csr.CsrEffect` they report.
"""
