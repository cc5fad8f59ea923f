"""Serves the scikit-learn wine classifier written by train.py to modelgate's `command` runtime.

Run: python3 examples/sklearn/predict.py [model.pkl]   (default: model.pkl next to this file)
Input x: FP64 [batch, 13], the measurements of load_wine() in its feature order. Outputs: label INT64
[batch] (the cultivar, 0-2) and probabilities FP64 [batch, 3] (predict_proba).
Only load a pickle you wrote yourself: unpickling runs code.
"""

import pickle
import sys
from pathlib import Path

import sklearn

HERE = Path(__file__).resolve().parent
try:
    from modelgate_runtime import serve
except ImportError:  # run from a modelgate checkout: the helper lives in python/ at its root
    sys.path.insert(0, str(HERE.parents[1] / "python"))
    from modelgate_runtime import serve

FEATURE_COUNT = 13
CLASS_COUNT = 3
SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, FEATURE_COUNT]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, CLASS_COUNT]},
    ],
}


def load_model(path):
    with open(path, "rb") as file:
        bundle = pickle.load(file)
    if bundle["sklearn_version"] != sklearn.__version__:
        # stderr is modelgate's log of this program; the protocol stays on stdout.
        print(
            f"warning: {path} was written by scikit-learn {bundle['sklearn_version']}, "
            f"this is {sklearn.__version__}; retrain with train.py if answers look wrong",
            file=sys.stderr,
        )
    return bundle["model"]


def main(argv):
    model = load_model(Path(argv[1]) if len(argv) > 1 else HERE / "model.pkl")

    def predict(inputs):
        probabilities = model.predict_proba(inputs["x"])
        # argmax of predict_proba is what model.predict returns, without computing it twice.
        labels = model.classes_[probabilities.argmax(axis=1)]
        return {"label": labels, "probabilities": probabilities}

    # scikit-learn does its arithmetic in numpy, which releases the GIL: two requests can overlap.
    serve(predict, SIGNATURE, threads=2)


if __name__ == "__main__":
    main(sys.argv)
