"""Retrain on the bundled CSV and write model.json next to this file."""

from __future__ import annotations

import json
from pathlib import Path

from churn_model.data import load_rows, split
from churn_model.model import fit


def train() -> list[float]:
    train_rows, _ = split(load_rows())
    return [round(w, 6) for w in fit(train_rows)]


def main() -> None:
    weights = train()
    out = Path(__file__).with_name("model.json")
    out.write_text(json.dumps({"weights": weights, "features": 6}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
