"""Tests of the churn model, run by ci-kit against the installed package."""

import hashlib
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import churn_model
from churn_model import Customer, predict, predict_proba
from churn_model.data import load_rows, split
from churn_model.model import score
from churn_model.train import train


def accuracy(weights, rows):
    hits = sum((score(weights, c) >= 0.5) == bool(y) for c, y in rows)
    return hits / len(rows)


def _in_repository(name):
    root = Path(__file__).resolve().parent.parent
    return next(root.glob(f"**/churn_model/{name}")).relative_to(root).as_posix()


def test_quality_on_held_out_rows():
    _, held_out = split(load_rows())
    assert len(held_out) == 80
    weights = list(churn_model.load_model())
    acc = accuracy(weights, held_out)
    # ci-kit checks this evaluation record, attaches it to the release's test record on the
    # index and gates promotion on it against the version on stable ([tool.ci-kit.quality])
    if os.environ.get("CI_KIT_METRICS_FILE"):
        csv_bytes = resources.files("churn_model").joinpath("churn.csv").read_bytes()
        record = {
            "schema": 1,
            "metrics": {"held_out_accuracy": round(acc, 4), "held_out_rows": len(held_out)},
            "responses": {
                "kind": "probability",
                "reference": {"name": "churn.csv, every fifth row", "sha256": hashlib.sha256(csv_bytes).hexdigest()},
                "scores": [round(score(weights, c), 6) for c, _ in held_out],
            },
            # ci-kit profiles the reference data (missing values, categories, quantiles): the
            # file as the repository holds it, named from the repository's root
            "inputs": {"csv": _in_repository("churn.csv")},
        }
        with open(os.environ["CI_KIT_METRICS_FILE"], "w") as fh:
            json.dump(record, fh)
    assert acc >= 0.70


def test_shipped_model_is_what_training_gives():
    assert train() == list(churn_model.load_model())


def test_risky_customer_scores_higher_than_loyal_one():
    risky = Customer(tenure_months=2, monthly_charges=110, support_calls=5, contract="month")
    loyal = Customer(tenure_months=70, monthly_charges=25, support_calls=0, contract="two-year")
    assert predict(risky) and not predict(loyal)
    assert 0.0 < predict_proba(loyal) < predict_proba(risky) < 1.0


def test_command_line_prints_json():
    out = subprocess.run(
        [sys.executable, "-m", "churn_model.cli", "--tenure", "3", "--monthly", "95", "--support-calls", "4"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert json.loads(out)["churn"] is True
