"""Serve a Python predict function to modelgate's `command` runtime over its JSON Lines protocol.

The protocol is specified in docs/runtimes.md. This file is the whole helper: standard library only,
Python >= 3.9, meant to be copied next to a team's program or put on its PYTHONPATH.

    from modelgate_runtime import serve

    def predict(inputs):                      # {"x": [[5.1, 3.5, 1.4, 0.2], ...]}
        return {"y": [[sum(row)] for row in inputs["x"]]}

    serve(predict, {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]})
"""

from __future__ import annotations

import array
import base64
import binascii
import json
import math
import os
import struct
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional

__all__ = [
    "DATATYPES",
    "MAX_LINE_BYTES",
    "PROTOCOL_VERSION",
    "InvalidInput",
    "Tensor",
    "serve",
]

#: The protocol version this helper speaks; sent in the ready message.
PROTOCOL_VERSION = 1

#: Longest line either side may send, the terminating newline included (docs/runtimes.md, "Sizes").
MAX_LINE_BYTES = 64 * 1024 * 1024

# Little-endian struct codes of the fixed-size Open Inference Protocol datatypes.
_STRUCT_CODES = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}

#: Every datatype of the protocol (the Open Inference Protocol's names).
DATATYPES = tuple(_STRUCT_CODES) + ("BYTES",)

_FLOAT_TYPES = frozenset(("FP16", "FP32", "FP64"))
_INTEGER_RANGES = {
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
}

# modelgate parses JSON numbers as IEEE doubles: integers past 2**53 survive only in b64.
_JSON_EXACT_INTEGER = 2**53

# With encoding="auto", numeric tensors this large go out as b64: about a third the bytes of JSON text and
# much cheaper to parse on both sides; small ones stay readable JSON.
_AUTO_B64_MIN_ELEMENTS = 256


def _array_code(struct_code: str) -> Optional[str]:
    """An array typecode of the protocol's size and signedness for struct_code, if this platform has one
    (array is several times faster than struct for big tensors, but its integer sizes vary by platform)."""
    if struct_code in ("?", "e"):  # array has no bool or half-float typecode
        return None
    size = struct.calcsize("<" + struct_code)
    if struct_code in "fd":
        candidates = struct_code
    elif struct_code.islower():
        candidates = "bhilq"
    else:
        candidates = "BHILQ"
    return next((code for code in candidates if array.array(code).itemsize == size), None)


_ARRAY_CODES = {datatype: _array_code(code) for datatype, code in _STRUCT_CODES.items()}


class InvalidInput(ValueError):
    """Raise from predict when the request's inputs are wrong: modelgate then answers the caller with
    400 invalid_input instead of 500 inference_failed. The helper raises it itself for inputs that do not
    decode or do not match the declared signature."""


# ---------------------------------------------------------------------------------------------------------
# Tensors


def _product(shape: List[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _check_datatype(datatype: Any) -> str:
    if datatype not in DATATYPES:
        raise InvalidInput(f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}")
    return datatype


def _check_shape(shape: Any) -> List[int]:
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise InvalidInput(f"shape must be a list of non-negative integers, not {shape!r}")
    return shape


def _coerce_element(datatype: str, value: Any) -> Any:
    """One element as the Python value of datatype (float, int, bool or str); raises InvalidInput."""
    if hasattr(value, "item") and not isinstance(value, (int, float, str, bytes)):
        value = value.item()  # a numpy scalar, without importing numpy
    if datatype in _FLOAT_TYPES:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif datatype in _INTEGER_RANGES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = _INTEGER_RANGES[datatype]
            if low <= value <= high:
                return value
            raise InvalidInput(f"{value} is out of range for {datatype}")
    elif datatype == "BOOL":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif datatype == "BYTES":
        if isinstance(value, str):
            return value
        if isinstance(value, (bytes, bytearray)):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError as error:
                raise InvalidInput(f"BYTES elements must be UTF-8 text in this protocol: {error}") from None
    raise InvalidInput(f"{value!r} is not a {datatype} value")


def _coerce_elements(datatype: str, values: List[Any]) -> List[Any]:
    # The common cases in one pass with no per-element function call: it matters for big float tensors.
    if datatype in _FLOAT_TYPES and all(type(v) is float for v in values):
        return values
    if datatype in _INTEGER_RANGES and all(type(v) is int for v in values):
        low, high = _INTEGER_RANGES[datatype]
        if not values or (low <= min(values) and max(values) <= high):
            return values
    return [_coerce_element(datatype, v) for v in values]


def _pack(datatype: str, values: List[Any]) -> bytes:
    """The little-endian bytes of values (already coerced to datatype)."""
    if datatype == "BOOL":
        return bytes(1 if v else 0 for v in values)
    if datatype == "FP16":
        return b"".join(_pack_half(v) for v in values)
    code = _ARRAY_CODES[datatype]
    if code is None:
        return struct.pack(f"<{len(values)}{_STRUCT_CODES[datatype]}", *values)
    packed = array.array(code, values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _pack_half(value: float) -> bytes:
    try:
        return struct.pack("<e", value)
    except OverflowError:  # beyond ±65504 rounds to infinity, as a float16 cast does elsewhere
        return struct.pack("<e", math.copysign(math.inf, value))


def _unpack(datatype: str, raw: bytes) -> List[Any]:
    """The values of datatype in little-endian raw bytes."""
    size = struct.calcsize("<" + _STRUCT_CODES[datatype])
    if len(raw) % size:
        raise InvalidInput(
            f"{len(raw)} bytes is not a whole number of {datatype} elements ({size} bytes each)"
        )
    if datatype == "BOOL":
        return [b != 0 for b in raw]
    code = _ARRAY_CODES[datatype]
    if code is None:
        return list(struct.unpack(f"<{len(raw) // size}{_STRUCT_CODES[datatype]}", raw))
    values = array.array(code)
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def _flatten(value: Any) -> "tuple[List[int], List[Any]]":
    """The shape and row-major elements of nested lists (or tuples, or anything with numpy's tolist())."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    shape: List[int] = []
    probe = value
    while isinstance(probe, (list, tuple)):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    level = [value]
    for depth, length in enumerate(shape):
        next_level: List[Any] = []
        for item in level:
            if not isinstance(item, (list, tuple)) or len(item) != length:
                raise ValueError(
                    f"ragged nesting: expected {length} items at depth {depth}, got {item!r:.60}"
                )
            next_level.extend(item)
        level = next_level
    if any(isinstance(item, (list, tuple)) for item in level):
        raise ValueError("ragged nesting: lists and scalars mixed at the same depth")
    return shape, level


def _nest(shape: List[int], values: List[Any]) -> Any:
    """Row-major values as nested lists of shape (a bare value for shape [])."""
    if not shape:
        return values[0]
    if len(shape) == 1:
        return list(values)
    step = _product(shape[1:])
    return [_nest(shape[1:], values[i * step : (i + 1) * step]) for i in range(shape[0])]


def _infer_datatype(values: List[Any]) -> str:
    if not values:
        return "FP32"
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, (str, bytes)) for v in values):
        return "BYTES"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    return "FP32"


class Tensor:
    """A tensor as the protocol carries it: datatype, shape and flat row-major data.

    Tensor.decode(message) reads a protocol tensor ({"datatype", "shape", "data"}, data a flat JSON array
    or {"b64": ...}); tensor.encode(encoding) writes one. Tensor.from_nested / tensor.to_nested convert to
    and from the nested Python lists predict works with.
    """

    __slots__ = ("datatype", "shape", "data")

    def __init__(self, datatype: str, shape: List[int], data: List[Any]):
        self.datatype = _check_datatype(datatype)
        self.shape = list(_check_shape(list(shape)))
        if len(data) != _product(self.shape):
            raise InvalidInput(f"{len(data)} elements do not fill shape {self.shape}")
        self.data = data

    @classmethod
    def decode(cls, message: Any) -> "Tensor":
        """A tensor from its protocol form; raises InvalidInput when it is not a valid one."""
        if not isinstance(message, dict):
            raise InvalidInput(
                f"a tensor must be an object with datatype, shape and data, not {message!r:.60}"
            )
        datatype = _check_datatype(message.get("datatype"))
        shape = _check_shape(message.get("shape"))
        data = message.get("data")
        if isinstance(data, dict) and set(data) == {"b64"} and isinstance(data["b64"], str):
            if datatype == "BYTES":
                raise InvalidInput("BYTES tensors carry their data as a JSON array of strings, not b64")
            try:
                raw = base64.b64decode(data["b64"], validate=True)
            except (binascii.Error, ValueError) as error:
                raise InvalidInput(f"data.b64 is not valid base64: {error}") from None
            values = _unpack(datatype, raw)
        elif isinstance(data, list):
            values = _coerce_elements(datatype, data)
        else:
            raise InvalidInput('data must be a flat JSON array or {"b64": "<base64>"}')
        return cls(datatype, shape, values)

    def encode(self, encoding: str = "json") -> Dict[str, Any]:
        """The protocol form: encoding "json" (a flat array), "b64" or "auto" (b64 when the tensor is big
        or JSON cannot carry its values exactly: NaN, infinities, integers beyond 2**53)."""
        if encoding == "auto":
            encoding = "b64" if self.datatype != "BYTES" and self._prefers_b64() else "json"
        if encoding == "b64":
            if self.datatype == "BYTES":
                raise ValueError("BYTES tensors cannot be b64-encoded")
            data: Any = {"b64": base64.b64encode(_pack(self.datatype, self.data)).decode("ascii")}
        elif encoding == "json":
            data = self.data
        else:
            raise ValueError(f'encoding must be "json", "b64" or "auto", not {encoding!r}')
        return {"datatype": self.datatype, "shape": self.shape, "data": data}

    def _prefers_b64(self) -> bool:
        if len(self.data) >= _AUTO_B64_MIN_ELEMENTS:
            return True
        if self.datatype in _FLOAT_TYPES:
            return not all(math.isfinite(v) for v in self.data)
        if self.datatype in ("INT64", "UINT64"):
            return any(abs(v) > _JSON_EXACT_INTEGER for v in self.data)
        return False

    @classmethod
    def from_nested(cls, value: Any, datatype: Optional[str] = None) -> "Tensor":
        """A tensor from nested lists (or a numpy array, or a scalar); the shape comes from the nesting and
        the datatype, when not given, from the elements: FP32 for floats, INT64 for ints, BOOL, BYTES."""
        try:
            shape, values = _flatten(value)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        if datatype is None:
            values = [
                v.item() if hasattr(v, "item") and not isinstance(v, (int, float)) else v for v in values
            ]
            datatype = _infer_datatype(values)
        return cls(datatype, shape, _coerce_elements(_check_datatype(datatype), values))

    def to_nested(self) -> Any:
        """The data as nested lists shaped by shape (a bare value for a scalar tensor)."""
        return _nest(self.shape, self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (self.datatype, self.shape, self.data) == (other.datatype, other.shape, other.data)

    def __repr__(self) -> str:
        return f"Tensor({self.datatype!r}, {self.shape!r}, <{len(self.data)} elements>)"


# ---------------------------------------------------------------------------------------------------------
# Signatures


def _check_signature(signature: Any) -> Dict[str, List[Dict[str, Any]]]:
    """The signature, validated: {"inputs": [{name, datatype, shape}], "outputs": [...]}; else ValueError."""
    if not isinstance(signature, dict) or set(signature) - {"inputs", "outputs"}:
        raise ValueError('signature must be {"inputs": [...], "outputs": [...]}')
    for side in ("inputs", "outputs"):
        specs = signature.get(side)
        if not isinstance(specs, list) or not specs:
            raise ValueError(f"signature.{side} must be a non-empty list")
        names = set()
        for spec in specs:
            if not isinstance(spec, dict) or set(spec) != {"name", "datatype", "shape"}:
                raise ValueError(
                    f"each of signature.{side} must have exactly name, datatype and shape: {spec!r}"
                )
            if not isinstance(spec["name"], str) or not spec["name"] or spec["name"] in names:
                raise ValueError(
                    f"signature.{side} names must be distinct non-empty strings: {spec['name']!r}"
                )
            names.add(spec["name"])
            if spec["datatype"] not in DATATYPES:
                raise ValueError(f"signature.{side} {spec['name']}: unknown datatype {spec['datatype']!r}")
            shape = spec["shape"]
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
            ):
                raise ValueError(f"signature.{side} {spec['name']}: shape must be integers >= -1: {shape!r}")
    return signature


def _shape_matches(shape: List[int], declared: List[int]) -> bool:
    return len(shape) == len(declared) and all(d == -1 or d == s for s, d in zip(shape, declared))


# ---------------------------------------------------------------------------------------------------------
# The serving loop


class _Server:
    """Reads requests from a binary input stream and writes one answer line per request to out."""

    def __init__(
        self,
        predict: Callable[[Dict[str, Any]], Any],
        signature: Optional[Dict[str, Any]],
        batch: bool,
        threads: int,
        encoding: str,
        out: Any,
        log: Any,
    ):
        self.predict = predict
        self.signature = signature
        self.inputs = {spec["name"]: spec for spec in signature["inputs"]} if signature else None
        self.outputs = {spec["name"]: spec for spec in signature["outputs"]} if signature else {}
        self.batch = batch
        self.threads = threads
        self.encoding = encoding
        self.out = out
        self.log = log
        self.write_lock = threading.Lock()

    def note(self, message: str) -> None:
        print(f"modelgate_runtime: {message}", file=self.log, flush=True)

    def write(self, message: Dict[str, Any]) -> None:
        line = json.dumps(message, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(line) + 1 > MAX_LINE_BYTES and message.get("type") == "result":
            size = len(line) + 1
            message = self.error_message(
                message["id"], "inference_failed", f"result line of {size} bytes exceeds {MAX_LINE_BYTES}"
            )
            line = json.dumps(message).encode("utf-8")
        with self.write_lock:
            try:
                self.out.write(line + b"\n")
                self.out.flush()
            except BrokenPipeError:
                # modelgate is gone (it reads our stdout for as long as it wants answers): nothing to answer.
                self.note("stdout closed by modelgate; exiting")
                self.log.flush()
                os._exit(0)

    @staticmethod
    def error_message(request_id: str, code: str, text: str) -> Dict[str, Any]:
        return {"type": "error", "id": request_id, "code": code, "message": text}

    def run(self, stdin: Any) -> None:
        ready: Dict[str, Any] = {"type": "ready", "protocol": PROTOCOL_VERSION}
        if self.signature:
            ready["signature"] = self.signature
        self.write(ready)
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="predict") if self.threads > 1 else None
        try:
            while True:
                line = stdin.readline(MAX_LINE_BYTES)
                if not line:
                    break
                if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                    self.skip_rest_of_line(stdin)
                    continue
                request = self.parse(line)
                if request is None:
                    continue
                if pool:
                    pool.submit(self.answer, request)
                else:
                    self.answer(request)
        finally:
            if pool:
                pool.shutdown(wait=True)  # answer everything already received before exiting

    def skip_rest_of_line(self, stdin: Any) -> None:
        while True:
            rest = stdin.readline(MAX_LINE_BYTES)
            if not rest or rest.endswith(b"\n"):
                break
        self.note(f"ignoring a stdin line longer than {MAX_LINE_BYTES} bytes")

    def parse(self, line: bytes) -> Optional[Dict[str, Any]]:
        """The infer request on line, or None (with a note on stderr) for anything else."""
        if not line.strip():
            return None
        try:
            message = json.loads(line)
        except ValueError as error:
            self.note(f"ignoring a stdin line that is not JSON ({error}): {line[:80]!r}")
            return None
        if not isinstance(message, dict):
            self.note(f"ignoring a stdin line that is not a JSON object: {line[:80]!r}")
            return None
        kind = message.get("type")
        if kind != "infer":
            # Unknown types are skipped, not fatal, so that modelgate can add message types later.
            self.note(f"ignoring a message of type {kind!r}")
            return None
        if not isinstance(message.get("id"), str):
            self.note(f"ignoring an infer message without a string id: {line[:80]!r}")
            return None
        return message

    def answer(self, request: Dict[str, Any]) -> None:
        request_id = request["id"]
        try:
            outputs = self.infer(request.get("inputs"))
            message: Dict[str, Any] = {
                "type": "result",
                "id": request_id,
                "outputs": {name: tensor.encode(self.encoding) for name, tensor in outputs.items()},
            }
        except InvalidInput as error:
            message = self.error_message(request_id, "invalid_input", str(error))
        except Exception as error:  # never let one request end the loop
            self.note(f"request {request_id} failed:\n{traceback.format_exc().rstrip()}")
            message = self.error_message(request_id, "inference_failed", f"{type(error).__name__}: {error}")
        self.write(message)

    def infer(self, raw_inputs: Any) -> Dict[str, Tensor]:
        inputs = self.decode_inputs(raw_inputs)
        if self.batch:
            return self.to_tensors(self.predict({name: t.to_nested() for name, t in inputs.items()}))
        return self.infer_row_by_row(inputs)

    def decode_inputs(self, raw_inputs: Any) -> Dict[str, Tensor]:
        if not isinstance(raw_inputs, dict) or not raw_inputs:
            raise InvalidInput("inputs must be a non-empty object of named tensors")
        inputs = {}
        for name, raw in raw_inputs.items():
            try:
                inputs[name] = Tensor.decode(raw)
            except InvalidInput as error:
                raise InvalidInput(f"input {name!r}: {error}") from None
        if self.inputs is not None:
            for name, spec in self.inputs.items():
                tensor = inputs.get(name)
                if tensor is None:
                    raise InvalidInput(f"missing input {name!r}")
                if tensor.datatype != spec["datatype"]:
                    raise InvalidInput(
                        f"input {name!r} is {tensor.datatype}; the signature declares {spec['datatype']}"
                    )
                if not _shape_matches(tensor.shape, spec["shape"]):
                    raise InvalidInput(
                        f"input {name!r} has shape {tensor.shape}; the signature declares {spec['shape']}"
                    )
            unknown = sorted(set(inputs) - set(self.inputs))
            if unknown:
                raise InvalidInput(
                    f"unknown input {unknown[0]!r}; the signature declares {sorted(self.inputs)}"
                )
        return inputs

    def to_tensors(self, outputs: Any, one_row: bool = False) -> Dict[str, Tensor]:
        """predict's return value as named tensors, typed and shape-checked by the declared outputs where
        there are some (without their first dimension for one row's outputs)."""
        if not isinstance(outputs, dict):
            if len(self.outputs) != 1:
                raise TypeError(f"predict must return a dict of named outputs, not {type(outputs).__name__}")
            outputs = {next(iter(self.outputs)): outputs}
        tensors = {}
        for name, value in outputs.items():
            if not isinstance(name, str):
                raise TypeError(f"output names must be strings, not {name!r}")
            spec = self.outputs.get(name)
            try:
                tensor = self.to_tensor(value, spec["datatype"] if spec else None)
            except InvalidInput as error:  # a bad output is the program's failure, not the caller's
                raise ValueError(f"output {name!r}: {error}") from None
            if spec and tensor.datatype != spec["datatype"]:
                raise ValueError(
                    f"output {name!r} is {tensor.datatype}; the signature declares {spec['datatype']}"
                )
            declared = spec["shape"][1:] if spec and one_row else spec["shape"] if spec else None
            if declared is not None and not _shape_matches(tensor.shape, declared):
                raise ValueError(
                    f"output {name!r} has shape {tensor.shape}; the signature declares {declared}"
                )
            tensors[name] = tensor
        if self.outputs and set(tensors) != set(self.outputs):
            raise ValueError(
                f"predict returned outputs {sorted(tensors)}; the signature declares {sorted(self.outputs)}"
            )
        return tensors

    @staticmethod
    def to_tensor(value: Any, datatype: Optional[str]) -> Tensor:
        if isinstance(value, Tensor):
            return value
        if isinstance(value, dict) and {"datatype", "shape", "data"} <= set(value):
            data = value["data"]
            if isinstance(data, dict):  # already {"b64": ...}
                return Tensor.decode(value)
            return Tensor(value["datatype"], value["shape"], Tensor.from_nested(data, value["datatype"]).data)
        return Tensor.from_nested(value, datatype)

    def infer_row_by_row(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """batch=False: predict sees one row at a time (each input without its first dimension)."""
        sizes = {t.shape[0] if t.shape else None for t in inputs.values()}
        if len(sizes) != 1 or None in sizes:
            raise InvalidInput("every input needs the same first (batch) dimension")
        rows = sizes.pop()
        nested = {name: t.to_nested() for name, t in inputs.items()}
        per_row = [
            self.to_tensors(self.predict({name: v[i] for name, v in nested.items()}), one_row=True)
            for i in range(rows)
        ]
        if not per_row:
            if not self.outputs:
                raise InvalidInput(
                    "an empty batch cannot be answered row by row without a declared signature"
                )
            return {name: self.empty_batch(spec) for name, spec in self.outputs.items()}
        stacked = {}
        for name, first in per_row[0].items():
            parts = [row.get(name) for row in per_row]
            if any(p is None or p.shape != first.shape or p.datatype != first.datatype for p in parts):
                raise ValueError(f"output {name!r} differs in presence, shape or datatype between rows")
            stacked[name] = Tensor(first.datatype, [rows] + first.shape, [v for p in parts for v in p.data])
        return stacked

    @staticmethod
    def empty_batch(spec: Dict[str, Any]) -> Tensor:
        return Tensor(spec["datatype"], [0] + [max(d, 0) for d in spec["shape"][1:]], [])


def _claim_stdout() -> Any:
    """Keeps the real stdout for protocol lines and points everything else that writes to stdout (print,
    C extensions, child processes) at stderr, which modelgate logs."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb")


def serve(
    predict: Callable[[Dict[str, Any]], Any],
    signature: Optional[Dict[str, Any]] = None,
    *,
    batch: bool = True,
    threads: int = 1,
    encoding: str = "auto",
) -> None:
    """Answers modelgate's infer requests with predict until stdin closes, then returns (so the program
    exits 0 when serve() is its last statement). Call it once the model is loaded: it first says ready.

    predict(inputs) receives {name: nested lists shaped like the tensor} and returns {name: value}, each
    value nested lists (or a numpy array, or a Tensor, or {"datatype", "shape", "data"} for full control);
    a bare value is accepted when the signature declares exactly one output. Outputs take their datatype
    from the signature, else from their elements (FP32 for floats, INT64 for ints, BOOL, BYTES for str).
    An exception becomes an error answer (InvalidInput: code invalid_input; anything else:
    inference_failed) with its type and message; the traceback goes to stderr.

    signature: {"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}, -1 for a free dimension;
        sent in the ready message and checked against every request. Default None: the deployment
        declares it, and inputs are passed through unchecked.
    batch: default True, predict gets the whole batch (the first dimension of each input). False: predict
        is called once per row, without the first dimension, and its outputs are stacked.
    threads: default 1, one request at a time. More: a pool of that many threads runs predict
        concurrently (worth it when predict releases the GIL, as numpy and scikit-learn largely do).
    encoding: how outputs are written: "auto" (default: b64 for tensors of 256 elements or more, and
        whenever JSON cannot carry the values exactly), "json" or "b64".
    """
    if not callable(predict):
        raise TypeError("predict must be callable")
    if signature is not None:
        signature = _check_signature(signature)
    if not isinstance(threads, int) or threads < 1:
        raise ValueError("threads must be a positive integer")
    if encoding not in ("auto", "json", "b64"):
        raise ValueError('encoding must be "auto", "json" or "b64"')
    out = _claim_stdout()
    server = _Server(predict, signature, batch, threads, encoding, out, sys.stderr)
    server.run(sys.stdin.buffer)
    out.flush()
