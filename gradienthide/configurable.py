"""A base for defenses and attacks: a dataclass whose fields are the config's knobs."""

from __future__ import annotations

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
