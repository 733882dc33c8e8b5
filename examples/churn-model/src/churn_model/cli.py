"""churn-predict: one customer in, a churn probability out (used by the image smoke test)."""

from __future__ import annotations

import argparse
import json

from churn_model.model import Customer, predict_proba


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="churn-predict", description=__doc__)
    p.add_argument("--tenure", type=int, required=True, help="months as a customer")
    p.add_argument("--monthly", type=float, required=True, help="monthly charges")
    p.add_argument("--support-calls", type=int, default=0)
    p.add_argument("--contract", choices=["month", "year", "two-year"], default="month")
    a = p.parse_args(argv)
    proba = predict_proba(Customer(a.tenure, a.monthly, a.support_calls, a.contract))
    print(json.dumps({"churn_probability": round(proba, 4), "churn": proba >= 0.5}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
