"""Attacks, by the name the config uses. Adding one: a new file and one line here.

An attack's module (and torch) is imported when the attack is built, not when Snakemake
parses the workflow: the rules read only the names and what each attack is given, set here
too (needs_public_pool, needs_public_draws, infers_public_draws)."""

from gradienthide.configurable import Registry

ATTACKS: Registry = Registry("attacks", {
    "dlg": "gradienthide.attacks.dlg:DeepLeakage",
    "idlg": "gradienthide.attacks.idlg:ImprovedDeepLeakage",
    "ig": "gradienthide.attacks.inverting_gradients:InvertingGradients",
    "gradinversion": "gradienthide.attacks.gradinversion:GradInversion",
    "adaptive": "gradienthide.attacks.adaptive:AdaptiveAttack",
    "adaptive_oracle": "gradienthide.attacks.adaptive_oracle:AdaptiveOracleAttack",
    "adaptive_infer": "gradienthide.attacks.adaptive_infer:AdaptiveInferAttack",
}, trait_names=("needs_public_pool", "needs_public_draws", "infers_public_draws"), traits={
    "adaptive": {"needs_public_pool": True},
    "adaptive_oracle": {"needs_public_pool": True, "needs_public_draws": True},
    "adaptive_infer": {"needs_public_pool": True, "infers_public_draws": True},
})


def make_attack(name: str, params: dict | None = None):
    if name not in ATTACKS:
        raise ValueError(f"attacks.{name}: no such attack (known: {', '.join(sorted(ATTACKS))})")
    return ATTACKS[name].from_params(params)


def __getattr__(name: str):
    if name in ("Attack", "AttackTarget"):  # the base module imports torch: only when they are used
        from gradienthide.attacks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ATTACKS", "Attack", "AttackTarget", "make_attack"]
