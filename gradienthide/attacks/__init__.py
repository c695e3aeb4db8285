"""Attacks, by the name the config uses. Adding one: a new file and one line here."""

from gradienthide.attacks.adaptive import AdaptiveAttack
from gradienthide.attacks.adaptive_infer import AdaptiveInferAttack
from gradienthide.attacks.adaptive_oracle import AdaptiveOracleAttack
from gradienthide.attacks.base import Attack, AttackTarget
from gradienthide.attacks.dlg import DeepLeakage
from gradienthide.attacks.gradinversion import GradInversion
from gradienthide.attacks.idlg import ImprovedDeepLeakage
from gradienthide.attacks.inverting_gradients import InvertingGradients

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (DeepLeakage, ImprovedDeepLeakage, InvertingGradients, GradInversion, AdaptiveAttack,
                           AdaptiveOracleAttack, AdaptiveInferAttack)}


def make_attack(name: str, params: dict | None = None) -> Attack:
    if name not in ATTACKS:
        raise ValueError(f"attacks.{name}: no such attack (known: {', '.join(sorted(ATTACKS))})")
    return ATTACKS[name].from_params(params)


__all__ = ["ATTACKS", "Attack", "AttackTarget", "make_attack"]
