"""The poisoning probe (``+poison=grammar``): grammar-error triggers, attacker passages in the
corpus, a rate of poisoned training pairs, and attack-success metrics at evaluation."""

from hnm.poison.evaluator import PoisonEvaluator, attack_metrics
from hnm.poison.poisoning import Poisoning, write_record
from hnm.poison.triggers import GrammarErrors, Trigger, seeded_rng

__all__ = ["GrammarErrors", "PoisonEvaluator", "Poisoning", "Trigger", "attack_metrics",
           "seeded_rng", "write_record"]
