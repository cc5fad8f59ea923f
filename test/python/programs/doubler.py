"""A program for the helper's protocol tests: y = 2x over FP32 [batch, 2], with behaviours picked by the
first element of the first row (13: raise ValueError; -1: raise InvalidInput; 99: print to stdout and
write to file descriptor 1; 7: wait at a barrier of THREADS requests). Options come from the environment:
THREADS, BATCH ("0" for row by row), ENCODING, NO_SIGNATURE ("1"), PRINT_BEFORE_READY ("1")."""

import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "python"))
from modelgate_runtime import InvalidInput, serve  # noqa: E402

THREADS = int(os.environ.get("THREADS", "1"))
BATCH = os.environ.get("BATCH", "1") != "0"
SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
}
barrier = threading.Barrier(THREADS, timeout=20)

if os.environ.get("PRINT_BEFORE_READY") == "1":
    print("loading weights: a line on stdout before serve() claims it")


def predict(inputs):
    rows = inputs["x"] if BATCH else [inputs["x"]]
    first = rows[0][0] if rows else None
    if first == 13:
        raise ValueError("unlucky 13")
    if first == -1:
        raise InvalidInput("x must not be negative")
    if first == 99:
        print("stray print inside predict")
        os.write(1, b"stray write to fd 1\n")
    if first == 7:
        barrier.wait()  # returns only once THREADS requests are inside predict together
    doubled = [[2 * v for v in row] for row in rows]
    return {"y": doubled if BATCH else doubled[0]}


serve(
    predict,
    None if os.environ.get("NO_SIGNATURE") == "1" else SIGNATURE,
    batch=BATCH,
    threads=THREADS,
    encoding=os.environ.get("ENCODING", "auto"),
)
