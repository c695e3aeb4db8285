"""A base for defenses and attacks: a dataclass whose fields are the config's knobs."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import ClassVar


class Configurable:
    """Built from its config block; unknown keys are errors naming `<section>.<name>`."""

    name: ClassVar[str]
    section: ClassVar[str]  # the config's top-level key: "defenses" or "attacks"

    @classmethod
    def from_params(cls, params: dict | None):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params or {}) - known)
        if unknown:
            raise ValueError(f"{cls.section}.{cls.name}: unknown parameters {unknown} (known: {sorted(known)})")
        return cls(**(params or {}))


class Registry(Mapping):
    """Classes by the name the config uses, each named by its module path ("module:Class") and
    imported, with torch, only when it is asked for: Snakemake reads the names and the `traits`
    (flags the rules need, e.g. uses_public_pool) while it parses the workflow.

    `traits` gives, per name, the flags that differ from False; tests check them against the
    classes' own attributes."""

    def __init__(self, section: str, paths: dict[str, str], trait_names: tuple[str, ...],
                 traits: dict[str, dict[str, bool]]):
        self.section, self._paths, self.trait_names, self._traits = section, dict(paths), trait_names, traits
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        if name not in self._classes:
            module, _, attribute = self._paths[name].partition(":")
            self._classes[name] = getattr(importlib.import_module(module), attribute)
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._paths

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def trait(self, name: str, trait: str) -> bool:
        """A class flag, read without importing the class."""
        if name not in self._paths or trait not in self.trait_names:
            raise KeyError(f"{self.section}: {name!r} or its trait {trait!r} is not registered")
        return self._traits.get(name, {}).get(trait, False)
