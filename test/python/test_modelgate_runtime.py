"""The helper python/modelgate_runtime.py against docs/runtimes.md: the protocol through a real
subprocess (test/python/programs/doubler.py), and the tensor encodings in-process."""

import base64
import io
import json
import math
import struct
import sys
import unittest
from unittest import mock

from protocol_client import ROOT, Program, decode_data, fp32_b64

sys.path.insert(0, str(ROOT / "python"))
import modelgate_runtime  # noqa: E402
from modelgate_runtime import InvalidInput, Tensor  # noqa: E402


def x_tensor(rows):
    return {"x": {"datatype": "FP32", "shape": [len(rows), 2], "data": [v for row in rows for v in row]}}


class ProgramTestCase(unittest.TestCase):
    def start(self, **env):
        program = Program.doubler(**env)
        self.addCleanup(program.close)
        return program

    def start_ready(self, **env):
        program = self.start(**env)
        self.assertEqual(program.read_message()["type"], "ready")
        return program


class ReadyAndShutdown(ProgramTestCase):
    def test_ready_is_the_first_line_and_carries_the_signature(self):
        program = self.start()
        self.assertEqual(
            program.read_message(),
            {
                "type": "ready",
                "protocol": 1,
                "signature": {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
                },
            },
        )
        self.assertEqual(program.wait(), 0)

    def test_ready_without_a_signature_when_the_deployment_declares_it(self):
        program = self.start(NO_SIGNATURE=1)
        self.assertEqual(program.read_message(), {"type": "ready", "protocol": 1})
        program.infer("a", x_tensor([[1, 2]]))
        self.assertEqual(program.read_message()["outputs"]["y"]["data"], [2.0, 4.0])

    def test_output_before_serve_comes_before_ready_and_is_not_a_protocol_message(self):
        program = self.start(PRINT_BEFORE_READY=1)
        self.assertEqual(program.read_line(), b"loading weights: a line on stdout before serve() claims it\n")
        self.assertEqual(program.read_message()["type"], "ready")

    def test_exits_0_when_stdin_closes_after_answering_what_it_received(self):
        program = self.start_ready(THREADS=4)
        for i in range(20):
            program.infer(f"r{i}", x_tensor([[1000 + i, i]]))  # clear of the special values
        program.close_stdin()
        answered = {}
        while (line := program.read_line()) is not None:
            answer = json.loads(line)
            answered[answer["id"]] = answer["type"]
        self.assertEqual(answered, {f"r{i}": "result" for i in range(20)})
        self.assertEqual(program.wait(), 0)


class Requests(ProgramTestCase):
    def test_flat_json_input(self):
        program = self.start_ready()
        program.infer("req-1", x_tensor([[1, 2], [3.5, -4]]))
        self.assertEqual(
            program.read_message(),
            {
                "type": "result",
                "id": "req-1",
                "outputs": {"y": {"datatype": "FP32", "shape": [2, 2], "data": [2.0, 4.0, 7.0, -8.0]}},
            },
        )

    def test_b64_input_and_b64_output(self):
        program = self.start_ready(ENCODING="b64")
        program.infer(
            "b", {"x": {"datatype": "FP32", "shape": [2, 2], "data": fp32_b64([0.1, 0.2, 0.3, 0.4])}}
        )
        result = program.read_message()
        y = result["outputs"]["y"]
        self.assertEqual((y["datatype"], y["shape"]), ("FP32", [2, 2]))
        self.assertIn("b64", y["data"])
        expected = [2 * struct.unpack("<f", struct.pack("<f", v))[0] for v in (0.1, 0.2, 0.3, 0.4)]
        self.assertEqual(decode_data(y), [struct.unpack("<f", struct.pack("<f", v))[0] for v in expected])

    def test_auto_encoding_sends_big_tensors_as_b64(self):
        program = self.start_ready()
        rows = [[i, -i] for i in range(200)]  # 400 output elements
        program.infer("big", x_tensor(rows))
        y = program.read_message()["outputs"]["y"]
        self.assertIn("b64", y["data"])
        self.assertEqual(decode_data(y), [2.0 * v for row in rows for v in row])

    def test_an_exception_becomes_an_error_answer_and_the_loop_goes_on(self):
        program = self.start_ready()
        program.infer("bad", x_tensor([[13, 0]]))
        self.assertEqual(
            program.read_message(),
            {"type": "error", "id": "bad", "code": "inference_failed", "message": "ValueError: unlucky 13"},
        )
        program.infer("good", x_tensor([[1, 1]]))
        self.assertEqual(program.read_message()["id"], "good")
        self.assertEqual(program.wait(), 0)
        self.assertIn("request bad failed", program.stderr())
        self.assertIn("Traceback", program.stderr())

    def test_invalid_input_raised_by_predict_is_the_callers_fault(self):
        program = self.start_ready()
        program.infer("neg", x_tensor([[-1, 0]]))
        self.assertEqual(
            program.read_message(),
            {"type": "error", "id": "neg", "code": "invalid_input", "message": "x must not be negative"},
        )

    def test_inputs_that_do_not_decode_or_fit_the_signature_are_invalid_input(self):
        program = self.start_ready()
        cases = {
            "missing": {"y": {"datatype": "FP32", "shape": [1, 2], "data": [1, 2]}},
            "datatype": {"x": {"datatype": "FP64", "shape": [1, 2], "data": [1, 2]}},
            "shape": {"x": {"datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}},
            "count": {"x": {"datatype": "FP32", "shape": [2, 2], "data": [1, 2]}},
            "element": {"x": {"datatype": "FP32", "shape": [1, 2], "data": [1, "two"]}},
            "base64": {"x": {"datatype": "FP32", "shape": [1, 2], "data": {"b64": "not base64!"}}},
            "bytes": {"x": {"datatype": "FP32", "shape": [1, 2], "data": {"b64": "AAAA"}}},
            "empty": {},
        }
        for request_id, inputs in cases.items():
            program.infer(request_id, inputs)
        for request_id in cases:
            answer = program.read_message()
            self.assertEqual(
                (answer["type"], answer["id"], answer["code"]), ("error", request_id, "invalid_input")
            )
            self.assertIsInstance(answer["message"], str)

    def test_row_by_row_when_batch_is_false(self):
        program = self.start_ready(BATCH=0)
        program.infer("rows", x_tensor([[1, 2], [3, 4], [5, 6]]))
        y = program.read_message()["outputs"]["y"]
        self.assertEqual((y["shape"], y["data"]), ([3, 2], [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]))
        program.infer("none", {"x": {"datatype": "FP32", "shape": [0, 2], "data": []}})
        self.assertEqual(
            program.read_message()["outputs"]["y"], {"datatype": "FP32", "shape": [0, 2], "data": []}
        )


class StdoutStaysClean(ProgramTestCase):
    def test_stray_print_and_fd_1_writes_inside_predict_go_to_stderr(self):
        program = self.start_ready()
        program.infer("noisy", x_tensor([[99, 0]]))
        self.assertEqual(program.read_message()["id"], "noisy")
        self.assertEqual(program.wait(), 0)
        self.assertIsNone(program.read_line())  # nothing else reached stdout
        self.assertIn("stray print inside predict", program.stderr())
        self.assertIn("stray write to fd 1", program.stderr())


class Concurrency(ProgramTestCase):
    def test_threads_run_requests_together_and_answers_match_ids(self):
        # Each request with x[0][0] == 7 waits at a barrier for 4 of them: they can only all be answered if
        # 4 run at once. Answers may come in any order; each must carry its own request's result.
        program = self.start_ready(THREADS=4)
        for i in range(4):
            program.infer(f"c{i}", x_tensor([[7, i]]))
        answers = {}
        for _ in range(4):
            answer = program.read_message()
            answers[answer["id"]] = answer
        self.assertEqual(sorted(answers), ["c0", "c1", "c2", "c3"])
        for i in range(4):
            self.assertEqual(answers[f"c{i}"]["type"], "result", answers[f"c{i}"])
            self.assertEqual(answers[f"c{i}"]["outputs"]["y"]["data"], [14.0, 2.0 * i])
        self.assertEqual(program.wait(), 0)

    def test_many_concurrent_answers_are_whole_lines(self):
        program = self.start_ready(THREADS=8)
        count = 200
        for i in range(count):
            program.infer(str(i), x_tensor([[1000 + i, 0.5]] * (1 + i % 300)))  # clear of the special values
        seen = set()
        for _ in range(count):
            answer = program.read_message()  # json.loads fails on an interleaved line
            rows = 1 + int(answer["id"]) % 300
            self.assertEqual(answer["outputs"]["y"]["shape"], [rows, 2])
            self.assertEqual(decode_data(answer["outputs"]["y"])[:2], [2.0 * (1000 + int(answer["id"])), 1.0])
            seen.add(answer["id"])
        self.assertEqual(len(seen), count)


class MalformedLines(ProgramTestCase):
    def test_lines_that_are_not_requests_are_skipped_with_a_note_on_stderr(self):
        program = self.start_ready()
        program.send_raw(b"this is not json\n")
        program.send_raw(b"\n")
        program.send_raw(b"[1, 2, 3]\n")
        program.send({"type": "cancel", "id": "future-message-type"})
        program.send({"type": "infer", "inputs": x_tensor([[1, 1]])})  # no id: nothing to answer to
        program.send_raw(b"\xff\xfe not utf-8\n")
        program.infer("after", x_tensor([[1, 1]]))
        self.assertEqual(program.read_message()["id"], "after")
        self.assertEqual(program.wait(), 0)
        self.assertIsNone(program.read_line())
        stderr = program.stderr()
        self.assertIn("not JSON", stderr)
        self.assertIn("not a JSON object", stderr)
        self.assertIn("ignoring a message of type 'cancel'", stderr)
        self.assertIn("without a string id", stderr)

    def test_a_line_over_the_limit_is_skipped(self):
        # In-process with a small limit: the real one (64 MiB) is too big to be worth piping in a test.
        requests = (
            json.dumps({"type": "infer", "id": "long", "inputs": x_tensor([[1, 1]] * 50)}).encode()
            + b"\n"
            + json.dumps({"type": "infer", "id": "short", "inputs": x_tensor([[1, 1]])}).encode()
            + b"\n"
        )
        out, log = io.BytesIO(), io.StringIO()
        server = modelgate_runtime._Server(lambda inputs: {"y": inputs["x"]}, None, True, 1, "json", out, log)
        with mock.patch.object(modelgate_runtime, "MAX_LINE_BYTES", 200):
            server.run(io.BytesIO(requests))
        messages = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual([m["type"] for m in messages], ["ready", "result"])
        self.assertEqual(messages[1]["id"], "short")
        self.assertIn("longer than 200 bytes", log.getvalue())


class Tensors(unittest.TestCase):
    def test_b64_round_trips_every_fixed_size_datatype(self):
        samples = {
            "BOOL": [True, False, True],
            "UINT8": [0, 255],
            "UINT16": [0, 65535],
            "UINT32": [0, 2**32 - 1],
            "UINT64": [0, 2**64 - 1],
            "INT8": [-128, 127],
            "INT16": [-(2**15), 2**15 - 1],
            "INT32": [-(2**31), 2**31 - 1],
            "INT64": [-(2**63), 2**63 - 1],
            "FP16": [0.5, -2.0, 65504.0, math.inf],
            "FP32": [0.25, -(2.0**100), math.inf],
            "FP64": [0.1, -1e300],
        }
        self.assertEqual(set(samples) | {"BYTES"}, set(modelgate_runtime.DATATYPES))
        for datatype, values in samples.items():
            with self.subTest(datatype=datatype):
                tensor = Tensor(datatype, [len(values)], values)
                encoded = tensor.encode("b64")
                self.assertEqual(Tensor.decode(encoded), tensor)

    def test_b64_is_little_endian(self):
        self.assertEqual(
            base64.b64decode(Tensor("INT32", [1], [1]).encode("b64")["data"]["b64"]), b"\x01\0\0\0"
        )
        self.assertEqual(
            base64.b64decode(Tensor("FP16", [1], [1.0]).encode("b64")["data"]["b64"]), b"\x00\x3c"
        )
        decoded = Tensor.decode({"datatype": "UINT16", "shape": [2], "data": {"b64": "AQACAA=="}})
        self.assertEqual(decoded.data, [1, 2])

    def test_fp32_b64_rounds_to_float32(self):
        decoded = Tensor.decode(Tensor("FP32", [1], [0.1]).encode("b64"))
        self.assertEqual(decoded.data, [struct.unpack("<f", struct.pack("<f", 0.1))[0]])

    def test_bytes_tensors_are_json_strings_only(self):
        tensor = Tensor.from_nested([["a", "b"], ["c", "é"]])
        self.assertEqual(
            tensor.encode("auto"), {"datatype": "BYTES", "shape": [2, 2], "data": ["a", "b", "c", "é"]}
        )
        with self.assertRaises(ValueError):
            tensor.encode("b64")
        with self.assertRaises(InvalidInput):
            Tensor.decode({"datatype": "BYTES", "shape": [1], "data": {"b64": "YQ=="}})

    def test_nesting_gives_shape_and_elements_give_datatype(self):
        cases = [
            ([[1.5, 2], [3, 4]], "FP32", [2, 2]),
            ([[1, 2, 3]], "INT64", [1, 3]),
            ([True, False], "BOOL", [2]),
            (["x"], "BYTES", [1]),
            ([[[]]], "FP32", [1, 1, 0]),
            (2.5, "FP32", []),
        ]
        for value, datatype, shape in cases:
            with self.subTest(value=value):
                tensor = Tensor.from_nested(value)
                self.assertEqual((tensor.datatype, tensor.shape), (datatype, shape))
                self.assertEqual(tensor.to_nested(), value)

    def test_a_declared_datatype_wins_and_is_checked(self):
        self.assertEqual(Tensor.from_nested([1, 2], "FP64").data, [1.0, 2.0])
        self.assertEqual(Tensor.from_nested([1.0, 2.0], "INT64").data, [1, 2])
        with self.assertRaises(InvalidInput):
            Tensor.from_nested([0.5], "INT64")
        with self.assertRaises(InvalidInput):
            Tensor.from_nested([256], "UINT8")

    def test_ragged_nesting_is_refused(self):
        for value in ([[1, 2], [3]], [[1, 2], 3], [1, [2]]):
            with self.subTest(value=value), self.assertRaises(InvalidInput):
                Tensor.from_nested(value)

    def test_anything_with_tolist_is_taken_as_an_array(self):
        class FakeArray:  # the part of numpy.ndarray the helper relies on
            def tolist(self):
                return [[1, 2], [3, 4]]

        self.assertEqual(Tensor.from_nested(FakeArray()).shape, [2, 2])

    def test_auto_encoding_uses_b64_where_json_would_lose_values(self):
        self.assertEqual(Tensor("FP32", [2], [1.0, 2.0]).encode("auto")["data"], [1.0, 2.0])
        self.assertIn("b64", Tensor("FP32", [1], [math.nan]).encode("auto")["data"])
        self.assertIn("b64", Tensor("INT64", [1], [2**60]).encode("auto")["data"])
        self.assertIn("b64", Tensor("FP32", [256], [0.0] * 256).encode("auto")["data"])

    def test_nested_shape_with_zero_dimensions(self):
        self.assertEqual(Tensor("FP32", [2, 0], []).to_nested(), [[], []])
        self.assertEqual(Tensor("FP32", [0, 3], []).to_nested(), [])


class Arguments(unittest.TestCase):
    def test_serve_refuses_a_malformed_signature_before_saying_ready(self):
        bad = [
            {"inputs": []},
            {"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [-1]}], "outputs": []},
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-2]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            },
        ]
        for signature in bad:
            with self.subTest(signature=signature), self.assertRaises(ValueError):
                modelgate_runtime.serve(lambda inputs: inputs, signature)
        with self.assertRaises(ValueError):
            modelgate_runtime.serve(lambda inputs: inputs, threads=0)


if __name__ == "__main__":
    unittest.main()
