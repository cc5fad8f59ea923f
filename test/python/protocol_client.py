"""Runs a program under test/python/programs/ (or any command) as modelgate would: a subprocess whose
stdout carries protocol lines and whose stderr is collected, with timeouts on every read."""

import base64
import json
import os
import queue
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

PYTHON = "/usr/bin/python3"
ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).resolve().parent / "programs"
READ_TIMEOUT_S = 30


class Program:
    def __init__(self, argv, env=None):
        self.stderr_file = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read_stdout, daemon=True)
        self.reader.start()

    @classmethod
    def doubler(cls, **env):
        return cls([PYTHON, str(PROGRAMS / "doubler.py")], {k: str(v) for k, v in env.items()})

    def _read_stdout(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_line(self):
        """The next stdout line as bytes, or None at end of file."""
        return self.lines.get(timeout=READ_TIMEOUT_S)

    def read_message(self):
        line = self.read_line()
        if line is None:
            raise AssertionError(f"stdout closed; stderr: {self.stderr()}")
        return json.loads(line)

    def send(self, message):
        self.send_raw(json.dumps(message).encode("utf-8") + b"\n")

    def send_raw(self, data):
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def infer(self, request_id, inputs):
        self.send({"type": "infer", "id": request_id, "inputs": inputs})

    def close_stdin(self):
        self.process.stdin.close()

    def wait(self):
        """Closes stdin (if still open), waits for the exit and returns the exit code."""
        if not self.process.stdin.closed:
            self.process.stdin.close()
        code = self.process.wait(timeout=READ_TIMEOUT_S)
        self.reader.join(timeout=READ_TIMEOUT_S)
        return code

    def stderr(self):
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode("utf-8", "replace")

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        if not self.process.stdin.closed:
            self.process.stdin.close()
        self.stderr_file.close()


def fp32_b64(values):
    return {"b64": base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")}


def decode_data(tensor):
    """The flat values of a result tensor, whichever encoding it came in (FP32, FP64 or INT64 for b64)."""
    data = tensor["data"]
    if isinstance(data, list):
        return data
    raw = base64.b64decode(data["b64"])
    code = {"FP32": "f", "FP64": "d", "INT64": "q"}[tensor["datatype"]]
    return list(struct.unpack(f"<{len(raw) // struct.calcsize(code)}{code}", raw))
