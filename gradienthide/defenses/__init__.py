"""Defenses, by the name the config uses. Adding one: a new file and one line here."""

from gradienthide.defenses.base import ClientContext, Defense
from gradienthide.defenses.dp import DifferentialPrivacy
from gradienthide.defenses.gradienthide import GradientHide
from gradienthide.defenses.mixup import Mixup
from gradienthide.defenses.none import NoDefense
from gradienthide.defenses.precode import Precode
from gradienthide.defenses.pruning import GradientPruning
from gradienthide.defenses.soteria import Soteria

DEFENSES: dict[str, type[Defense]] = {
    cls.name: cls for cls in (NoDefense, GradientHide, DifferentialPrivacy, GradientPruning, Soteria, Precode, Mixup)
}


def make_defense(name: str, params: dict | None = None) -> Defense:
    if name not in DEFENSES:
        raise ValueError(f"defenses.{name}: no such defense (known: {', '.join(sorted(DEFENSES))})")
    return DEFENSES[name].from_params(params)


__all__ = ["DEFENSES", "ClientContext", "Defense", "make_defense"]
