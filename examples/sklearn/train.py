"""Trains the scikit-learn example: a standardised logistic regression on the wine data set that
scikit-learn ships (178 wines, 13 measurements, 3 cultivars), pickled for predict.py.

Run: python3 examples/sklearn/train.py [model.pkl]   (default: model.pkl next to this file)
Needs scikit-learn (Debian: apt-get install python3-sklearn). Deterministic: the split is seeded and lbfgs
is not random, so the same scikit-learn version writes the same model.
"""

import pickle
import sys
from pathlib import Path

import sklearn
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "model.pkl"
SEED = 20240601
MIN_TEST_ACCURACY = 0.9


def train():
    """The fitted pipeline and its accuracy on a held-out quarter of the data."""
    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=SEED, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    return model, model.score(x_test, y_test), data


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_MODEL_PATH
    model, accuracy, data = train()
    if accuracy < MIN_TEST_ACCURACY:
        raise SystemExit(f"test accuracy {accuracy:.3f} is below {MIN_TEST_ACCURACY}")
    bundle = {
        "model": model,
        "feature_names": list(data.feature_names),
        "target_names": [str(name) for name in data.target_names],
        # Pickles are only safe to load with the scikit-learn that wrote them; predict.py checks this.
        "sklearn_version": sklearn.__version__,
    }
    with open(path, "wb") as file:
        pickle.dump(bundle, file, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"wine: test accuracy {accuracy:.3f}; wrote {path} (scikit-learn {sklearn.__version__})")


if __name__ == "__main__":
    main(sys.argv)
