"""No defense: the client uploads its plain local update (FedAvg as is)."""

from dataclasses import dataclass

from gradienthide.defenses.base import Defense


@dataclass
class NoDefense(Defense):
    name = "none"
