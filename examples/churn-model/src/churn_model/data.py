"""The bundled training data, read with the standard library only."""

from __future__ import annotations

import csv
from importlib import resources

from churn_model.model import Customer

CONTRACTS = ("month", "year", "two-year")


def load_rows() -> list[tuple[Customer, int]]:
    """Customers of churn.csv with their label (1 = churned)."""
    text = resources.files("churn_model").joinpath("churn.csv").read_text()
    rows = []
    for rec in csv.DictReader(text.splitlines()):
        customer = Customer(
            tenure_months=int(rec["tenure_months"]),
            monthly_charges=float(rec["monthly_charges"]),
            support_calls=int(rec["support_calls"]),
            contract=rec["contract"],
        )
        rows.append((customer, int(rec["churned"])))
    return rows


def split(rows: list, holdout_every: int = 5) -> tuple[list, list]:
    """Deterministic train/held-out split: every fifth row is held out."""
    train = [r for i, r in enumerate(rows) if i % holdout_every]
    held_out = [r for i, r in enumerate(rows) if not i % holdout_every]
    return train, held_out
