"""The iris classifier of examples/build.ts in pure Python, served to modelgate's `command` runtime.

Same parameters (iris-weights.json, exported from iris.onnx by examples/export-iris-weights.ts) and the
same computation as the ONNX graph, so it answers like iris.onnx to within float32 rounding:
probabilities = softmax(relu(((x - mean) / std) W0 + b0) W1 + b1), label = argmax(probabilities).
Run: python3 examples/iris-python/predict.py (speaks docs/runtimes.md on stdin/stdout).
"""

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    from modelgate_runtime import serve
except ImportError:  # run from a modelgate checkout: the helper lives in python/ at its root
    sys.path.insert(0, str(HERE.parents[1] / "python"))
    from modelgate_runtime import serve

SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ],
}

WEIGHTS = json.loads((HERE / "iris-weights.json").read_text(encoding="utf-8"))
MEAN, STD = WEIGHTS["mean"], WEIGHTS["std"]
W0, B0, W1, B1 = WEIGHTS["W0"], WEIGHTS["b0"], WEIGHTS["W1"], WEIGHTS["b1"]


def dense(inputs, weights, biases):
    """Gemm with transB=0: weights are [in][out]."""
    return [bias + sum(v * weights[i][k] for i, v in enumerate(inputs)) for k, bias in enumerate(biases)]


def softmax(logits):
    top = max(logits)  # shifted by the maximum, as ONNX Runtime does, so exp never overflows
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [v / total for v in exps]


def classify(row):
    standardised = [(v - m) / s for v, m, s in zip(row, MEAN, STD)]
    hidden = [max(0.0, v) for v in dense(standardised, W0, B0)]
    probabilities = softmax(dense(hidden, W1, B1))
    # The first maximum, like ONNX ArgMax with its default select_last_index=0.
    label = max(range(len(probabilities)), key=lambda k: (probabilities[k], -k))
    return label, probabilities


def predict(inputs):
    results = [classify(row) for row in inputs["x"]]
    return {
        "label": [label for label, _ in results],
        "probabilities": [probabilities for _, probabilities in results],
    }


if __name__ == "__main__":
    serve(predict, SIGNATURE)
