"""A registry of classes by name whose built-in entries are imported on first lookup.

Both architecture registries use it: guest architectures (``arch/registry.py``) and
user mode's per-architecture Linux ABIs (``user/arch/__init__.py``). Built-in entries
are listed by *module path*, so generic code finds an ISA without importing any; the
module registers its class when it is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class LazyRegistry(Generic[T]):
    """``name -> class``; ``builtin`` maps names to the modules that register them."""

    __slots__ = ("what", "builtin", "registered")

    def __init__(self, what: str, builtin: Mapping[str, str]) -> None:
        self.what = what  # for messages: "guest architecture", "user-mode ABI"
        self.builtin = builtin
        self.registered: dict[str, type[T]] = {}

    def register(self, name: str, cls: type[T]) -> None:
        """Register ``cls`` as ``name``; registering the same class again is harmless.

        Raises:
            ValueError: another class is registered as ``name``.
        """
        other = self.registered.get(name)
        if other is not None and other is not cls:
            raise ValueError(f"{self.what} {name!r} is already registered "
                             f"({other.__module__}.{other.__qualname__})")
        self.registered[name] = cls

    def names(self) -> list[str]:
        """Every name that can be looked up, sorted."""
        return sorted(self.builtin.keys() | self.registered.keys())

    def get(self, name: str) -> type[T] | None:
        """The class registered as ``name`` (importing its built-in module first if
        needed), or None.

        Raises:
            RuntimeError: the built-in module did not register ``name`` (a bug).
        """
        cls = self.registered.get(name)
        if cls is None and name in self.builtin:
            importlib.import_module(self.builtin[name])
            cls = self.registered.get(name)
            if cls is None:
                raise RuntimeError(f"{self.builtin[name]} did not register {self.what} "
                                   f"{name!r}")
        return cls

    def all(self) -> list[type[T]]:
        """Every class, the built-in ones imported."""
        for name in self.builtin:
            self.get(name)
        return list(self.registered.values())
