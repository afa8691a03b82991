#!/usr/bin/env python3
# A stand-in for a customer's webhook endpoint, used by the Swift test suite.
# RapidFlow signs its outgoing webhook deliveries the Standard Webhooks way; checking
# those signatures only with our own Swift code would prove little, so this receiver
# checks them with the independent `standardwebhooks` package from PyPI instead.
# It keeps every POST it gets (signature good or bad) and hands the list back on
# GET /_received, so a test can assert on what was delivered, in what order, and whether
# it verified. A runtime "mode" (PUT /_mode/<mode>) makes it fail, vanish (410), hang or
# redirect, so the sender's retry, give-up, timeout and no-redirect paths can be exercised.
# Usage: receiver.py --port-file PATH --secret whsec_... [--log PATH]
"""Local Standard Webhooks receiver for RapidFlow's tests (see the comment above).

Control endpoints (never recorded as deliveries):
  GET    /_received       -> 200, JSON array of every recorded POST, in arrival order
  DELETE /_received       -> 200, clears that list
  PUT    /_mode/<mode>    -> 200, mode is one of ok, down, gone, slow, redirect
Any POST, to any path, is a delivery: it is verified, recorded, then answered per the mode.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

MODES = ("ok", "down", "gone", "slow", "redirect")
SLOW_SECONDS = 15


class State:
    """What the handlers share: the verifier, the mode and the recorded deliveries."""

    def __init__(self, webhook, log_path):
        self.webhook = webhook
        self.lock = threading.Lock()
        self.mode = "ok"
        self.received = []
        self.port = 0
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None

    def record(self, entry):
        line = json.dumps(entry)
        with self.lock:
            self.received.append(entry)
            if self.log is not None:
                self.log.write(line + "\n")
                self.log.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rapidflow-webhook-receiver"
    sys_version = ""

    @property
    def state(self):
        return self.server.state

    # No per-request logging on stderr.
    def log_message(self, format, *args):
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Skip any trailers up to the blank line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def reply(self, status, payload=None, extra_headers=()):
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in extra_headers:
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The sender gave up (e.g. its timeout in "slow" mode): nothing to answer.
            self.close_connection = True

    # Deliveries.
    def do_POST(self):
        raw = self.read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        verified, error = True, None
        try:
            # json_parse=False: a body that is signed right but is not JSON still verifies.
            self.state.webhook.verify(raw, headers, json_parse=False)
        except Exception as exc:  # the verifier's error is the point of the record
            verified, error = False, str(exc) or type(exc).__name__
        try:
            body = json.loads(raw)
        except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
            body = None

        with self.state.lock:
            mode = self.state.mode
        if self.path.startswith("/forge/"):
            # A forge's commit status API: not signed; answered 201 as the forges document.
            self.state.record({
                "path": self.path,
                "headers": headers,
                "verified": None,
                "error": None,
                "body": body,
                "received_at": time.time(),
                "answered": 201,
            })
            self.reply(201, {"id": 1})
            return
        status = {
            "ok": 200 if verified else 400,
            "down": 503,
            "gone": 410,
            "slow": 200,
            "redirect": 302,
        }[mode]
        # Recorded on arrival (before any "slow" wait), so a test sees it at once.
        self.state.record({
            "path": self.path,
            "webhook_id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "verified": verified,
            "error": error,
            "body": body,
            "raw": raw.decode("utf-8", "replace"),
            "received_at": time.time(),
            "answered": status,
        })

        if mode == "slow":
            time.sleep(SLOW_SECONDS)
        extra = ()
        if mode == "redirect":
            extra = (("Location", f"http://127.0.0.1:{self.state.port}/redirected"),)
        self.reply(status, {"verified": verified, "error": error}, extra)

    # Control endpoints.
    def do_GET(self):
        if self.path.split("?", 1)[0] == "/_received":
            with self.state.lock:
                snapshot = list(self.state.received)
            self.reply(200, snapshot)
        else:
            self.reply(404, {"error": "not found"})

    def do_DELETE(self):
        self.read_body()
        if self.path.split("?", 1)[0] == "/_received":
            with self.state.lock:
                cleared = len(self.state.received)
                self.state.received.clear()
            self.reply(200, {"cleared": cleared})
        else:
            self.reply(404, {"error": "not found"})

    def do_PUT(self):
        self.read_body()
        path = self.path.split("?", 1)[0]
        if path.startswith("/_mode/"):
            mode = path[len("/_mode/"):]
            if mode not in MODES:
                self.reply(400, {"error": f"unknown mode {mode!r}", "modes": list(MODES)})
                return
            with self.state.lock:
                self.state.mode = mode
            self.reply(200, {"mode": mode})
        else:
            self.reply(404, {"error": "not found"})


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(port))  # no trailing newline: the file is just the number
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Standard Webhooks receiver for tests.")
    parser.add_argument("--port-file", required=True, help="where to write the port it listens on")
    parser.add_argument("--secret", required=True, help="the endpoint secret, whsec_<base64 key>")
    parser.add_argument("--log", help="also append every delivery to this file as a JSON line")
    args = parser.parse_args(argv)

    try:
        webhook = Webhook(args.secret)
    except Exception as exc:
        print(f"receiver.py: bad --secret: {exc}", file=sys.stderr)
        return 2

    state = State(webhook, args.log)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a handler sleeping in "slow" mode must not hold up exit
    server.state = state
    state.port = server.server_address[1]

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A parent may start it with these blocked (the mask is inherited): unblock them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

    write_port_file(args.port_file, state.port)
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        server.server_close()
        if state.log is not None:
            state.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
