"""The iris example as a hand-written HTTP server: what a team writes when it wraps predict.py itself.

Standard library only (http.server's ThreadingHTTPServer, a thread per connection), HTTP/1.1 keep-alive,
and the KServe v1 JSON protocol:

    POST /v1/models/iris:predict  {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}
      -> 200 {"predictions": [{"label": 0, "probabilities": [0.98, 0.01, 0.01]}, ...]}
         (one object per instance, keyed by output name: the model has two outputs)
      -> 400 {"error": "..."} when the body is not such a request
    GET  /v1/models/iris          -> 200 {"name": "iris", "ready": true}
    GET  /healthz                 -> 200 {"status": "ok"}

Run: python3 examples/iris-python/http_server.py --host 127.0.0.1 --port 0
It prints one JSON line {"event":"listening","port":N} on stdout once it accepts connections (with
--port 0 the system picks the port), and exits 0 on SIGTERM or SIGINT.
The modelgate benchmark (bench/runtimes.ts) measures it, and modelgate's http runtime tests use it as a
v1 upstream.
"""

import argparse
import json
import math
import signal
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import predict  # noqa: E402  (predict.py lives next to this file)

MODEL_NAME = "iris"
PREDICT_PATH = f"/v1/models/{MODEL_NAME}:predict"
MODEL_PATH = f"/v1/models/{MODEL_NAME}"
FEATURES = 4
#: Largest request body read; a bigger one gets 413 and the connection is closed.
MAX_BODY_BYTES = 10 * 1024 * 1024
#: Pending connections the listening socket holds. socketserver's default of 5 makes a burst of 64
#: clients connecting at once wait for SYN retransmits (a second or more) on Linux.
LISTEN_BACKLOG = 128


class BadRequest(ValueError):
    """The request is not a valid predict request: 400 with its message."""


def _reject_constant(name):
    raise BadRequest(f"{name} is not a valid number")


def parse_instances(body: bytes):
    """The instances of a predict body as lists of 4 floats; raises BadRequest."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    try:
        # NaN and Infinity are not JSON; Python's parser would accept them without parse_constant.
        request = json.loads(text, parse_constant=_reject_constant)
    except BadRequest:
        raise
    except ValueError as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    if not isinstance(request, dict) or "instances" not in request:
        raise BadRequest('the body must be a JSON object {"instances": [[...], ...]}')
    instances = request["instances"]
    if not isinstance(instances, list):
        raise BadRequest("instances must be a list of rows")
    rows = []
    for index, row in enumerate(instances):
        if not isinstance(row, list) or len(row) != FEATURES:
            raise BadRequest(f"instances[{index}] must be a list of {FEATURES} numbers")
        values = []
        for value in row:
            # bool is an int in Python; true/false are not features.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(f"instances[{index}] must be a list of {FEATURES} numbers")
            try:
                value = float(value)
            except OverflowError:  # an integer beyond the float range
                value = math.inf
            if not math.isfinite(value):
                raise BadRequest(f"instances[{index}] holds a number out of range")
            values.append(value)
        rows.append(values)
    return rows


def predictions_of(rows):
    """One {"label", "probabilities"} object per row."""
    if not rows:
        return []
    outputs = predict({"x": rows})
    return [
        {"label": label, "probabilities": probabilities}
        for label, probabilities in zip(outputs["label"], outputs["probabilities"])
    ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    server_version = "iris-http-server/1"
    # Headers and body are two writes; without TCP_NODELAY the second can wait for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self.send_json(HTTPStatus.OK, {"status": "ok"})
        elif path == MODEL_PATH:
            self.send_json(HTTPStatus.OK, {"name": MODEL_NAME, "ready": True})
        elif path == PREDICT_PATH:
            self.send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, f"use POST {PREDICT_PATH}", allow="POST")
        else:
            self.send_error_json(HTTPStatus.NOT_FOUND, f"no route GET {path}")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        body = self.read_body()
        if body is None:
            return  # answered (and the connection closed) by read_body
        if path != PREDICT_PATH:
            if path in (MODEL_PATH, "/healthz"):
                self.send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, f"use GET {path}", allow="GET")
            else:
                self.send_error_json(HTTPStatus.NOT_FOUND, f"no route POST {path}")
            return
        try:
            rows = parse_instances(body)
        except BadRequest as error:
            self.send_error_json(HTTPStatus.BAD_REQUEST, str(error))
            return
        try:
            predictions = predictions_of(rows)
        except Exception as error:  # the model's failure: 500, and the server keeps serving
            self.log_error("predict failed: %r", error)
            self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")
            return
        self.send_json(HTTPStatus.OK, {"predictions": predictions})

    def read_body(self):
        """The request body (Content-Length or chunked), or None once an error has been answered."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked_body()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.isdigit():
            self.close_connection = True
            self.send_error_json(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
            return None
        if int(length) > MAX_BODY_BYTES:
            # The unread body would be taken for the next request: answer and close.
            self.close_connection = True
            self.send_too_large()
            return None
        body = self.rfile.read(int(length))
        if len(body) < int(length):  # the client went away mid-body
            self.close_connection = True
            return None
        return body

    def read_chunked_body(self):
        chunks, total = [], 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                self.send_error_json(HTTPStatus.BAD_REQUEST, "malformed chunked body")
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers, up to the empty line
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                self.send_too_large()
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def send_json(self, status, payload, allow=None):
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status, message, allow=None):
        self.send_json(status, {"error": message}, allow=allow)

    def send_too_large(self):
        self.send_error_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")

    def send_error(self, code, message=None, explain=None):
        # http.server's own errors (a malformed request line, an unsupported method) as JSON too.
        self.close_connection = True
        self.send_error_json(code, message or HTTPStatus(code).phrase)

    def log_message(self, format, *args):
        # One stderr line per request would cost more than the prediction; errors still go to stderr.
        pass

    def log_error(self, format, *args):
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True  # connections left open do not keep the process from exiting

    def server_bind(self):
        # A restarted server may take its port again at once (sockets of the last one in TIME_WAIT).
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()

    def handle_error(self, request, client_address):
        # A client that hangs up mid-answer is routine under load, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    parser = argparse.ArgumentParser(description="The iris example over HTTP (KServe v1 JSON).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default 8000)")
    args = parser.parse_args(argv)

    server = Server((args.host, args.port), Handler)

    def stop(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    port = server.server_address[1]
    print(json.dumps({"event": "listening", "port": port}, separators=(",", ":")), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
