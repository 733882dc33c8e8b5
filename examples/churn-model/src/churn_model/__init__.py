"""churn-model: predicts customer churn from tenure, charges, support calls and contract."""

from churn_model.model import Customer, load_model, predict, predict_proba

__all__ = ["Customer", "load_model", "predict", "predict_proba"]
