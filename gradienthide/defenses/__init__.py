"""Defenses, by the name the config uses. Adding one: a new file and one line here.

A defense's module (and torch) is imported when the defense is built, not when Snakemake
parses the workflow: the rules read only the names and the traits `uses_public_pool` and
`mixes_batch` (the config check reads it), given here too."""

from gradienthide.configurable import Registry
from gradienthide.defenses.base import ClientContext, Defense

DEFENSES: Registry = Registry("defenses", {
    "none": "gradienthide.defenses.none:NoDefense",
    "gradienthide": "gradienthide.defenses.gradienthide:GradientHide",
    "dp": "gradienthide.defenses.dp:DifferentialPrivacy",
    "pruning": "gradienthide.defenses.pruning:GradientPruning",
    "soteria": "gradienthide.defenses.soteria:Soteria",
    "precode": "gradienthide.defenses.precode:Precode",
    "mixup": "gradienthide.defenses.mixup:Mixup",
}, trait_names=("uses_public_pool", "mixes_batch"), traits={"gradienthide": {"uses_public_pool": True},
                                                          "mixup": {"mixes_batch": True}})


def make_defense(name: str, params: dict | None = None) -> Defense:
    if name not in DEFENSES:
        raise ValueError(f"defenses.{name}: no such defense (known: {', '.join(sorted(DEFENSES))})")
    return DEFENSES[name].from_params(params)


__all__ = ["DEFENSES", "ClientContext", "Defense", "make_defense"]
