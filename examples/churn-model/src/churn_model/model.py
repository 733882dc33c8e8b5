"""Logistic regression on four features, in pure Python so the product installs anywhere."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Customer:
    tenure_months: int
    monthly_charges: float
    support_calls: int
    contract: str  # "month", "year" or "two-year"

    def features(self) -> list[float]:
        # Scaled so that one learning rate suits every weight.
        return [
            1.0,
            self.tenure_months / 72.0,
            self.monthly_charges / 120.0,
            self.support_calls / 6.0,
            1.0 if self.contract == "month" else 0.0,
            1.0 if self.contract == "two-year" else 0.0,
        ]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def score(weights: list[float], customer: Customer) -> float:
    return _sigmoid(sum(w * x for w, x in zip(weights, customer.features(), strict=False)))


def fit(rows: list[tuple[Customer, int]], epochs: int = 400, rate: float = 0.5) -> list[float]:
    """Batch gradient descent; deterministic, so retraining reproduces model.json."""
    weights = [0.0] * 6
    n = len(rows)
    for _ in range(epochs):
        grad = [0.0] * 6
        for customer, label in rows:
            err = score(weights, customer) - label
            for j, x in enumerate(customer.features()):
                grad[j] += err * x
        weights = [w - rate * g / n for w, g in zip(weights, grad, strict=False)]
    return weights


@lru_cache(maxsize=1)
def load_model() -> tuple[float, ...]:
    """The trained weights shipped in the package (model.json)."""
    data = json.loads(resources.files("churn_model").joinpath("model.json").read_text())
    return tuple(data["weights"])


def predict_proba(customer: Customer) -> float:
    return score(list(load_model()), customer)


def predict(customer: Customer, threshold: float = 0.5) -> bool:
    return predict_proba(customer) >= threshold
