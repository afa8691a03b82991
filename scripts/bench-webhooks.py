#!/usr/bin/env python3
"""Webhook latencies, each beside a direct HTTP round trip measured in the same run.

  scripts/bench-webhooks.py [--binary .build/release/rapidflow] [--runs 20]

1. Push to running: a bare git repository whose post-receive hook is contrib/post-receive
   (curl + openssl, signed Standard Webhooks delivery to POST /hooks/git); a pipeline with
   `on: {push: {}}`. Per run: commit, `git push`, then the job's `started_at` (the service's
   clock, this machine's) minus the moment `git push` returned. Negative: the job was already
   running when the push returned (the hook answers after the job is created, and the
   scheduler claims it at once). Beside it: the time of `git push` itself, and of one HTTP
   round trip to the service (GET /health over a new connection, as curl in the hook does).
2. Finish to notification: a webhook for job.finished to a local receiver (Python's
   http.server, recording its clock on arrival); per run the receiver's arrival time minus the
   job's `finished_at`. Beside it: a direct POST of the same size to the same receiver
   (new connection), timed by the sender.
Everything listens on 127.0.0.1. Prints medians and p90 (milliseconds).
"""
import argparse
import http.client
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Receiver(http.server.BaseHTTPRequestHandler):
    arrivals = []

    def do_POST(self):
        arrived = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.arrivals.append((arrived, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def wait_for(condition, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise SystemExit("timed out")


def summary(values):
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9) - 1 if len(ordered) >= 10 else -1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/rapidflow"))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        raise SystemExit(f"{args.binary} is missing: build it (swift build -c release) or pass --binary")

    work = tempfile.mkdtemp(prefix="rapidflow-bench-webhooks-")
    service = None
    try:
        log = open(os.path.join(work, "service.log"), "w")
        service = subprocess.Popen(
            [args.binary, "serve", "--port", "0", "--data-dir", os.path.join(work, "data"), "--executor", "shell",
             "--allow-local-repos", "--log-level", "warning", "--webhook-allow-hosts", "127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT)
        base = None
        deadline = time.time() + 60
        while base is None and time.time() < deadline:
            text = open(os.path.join(work, "service.log")).read()
            if "listening on http://127.0.0.1:" in text:
                port = text.split("listening on http://127.0.0.1:")[1].split()[0]
                base = f"http://127.0.0.1:{port}"
            time.sleep(0.05)
        if base is None:
            raise SystemExit("the service did not start")

        # The repository, its hook and the pipeline.
        repo = os.path.join(work, "repo.git")
        clone = os.path.join(work, "work")
        run = lambda *command, cwd=work: subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout
        run("git", "init", "-q", "--bare", "--initial-branch=main", repo)
        run("git", "init", "-q", "--initial-branch=main", clone)
        run("git", "config", "user.email", "bench@example.com", cwd=clone)
        run("git", "config", "user.name", "bench", cwd=clone)
        run("git", "remote", "add", "origin", repo, cwd=clone)
        run("git", "commit", "-q", "--allow-empty", "-m", "start", cwd=clone)
        run("git", "push", "-q", "origin", "main", cwd=clone)
        secret = call(base, "POST", "/hooks", {"name": "bench", "forge": "git"})["secret"]
        shutil.copy(os.path.join(ROOT, "contrib/post-receive"), os.path.join(repo, "hooks/post-receive"))
        run("git", "config", "rapidflow.url", base, cwd=repo)
        run("git", "config", "rapidflow.secret", secret, cwd=repo)
        pipeline = call(base, "POST", "/pipelines", {"name": "bench", "config": f"repo: file://{repo}\non: {{push: {{}}}}\nsteps:\n  - \"true\"\n"})["id"]

        receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        receiver_url = f"http://127.0.0.1:{receiver.server_address[1]}/events"
        call(base, "POST", "/webhooks", {"url": receiver_url, "events": ["job.finished"]})

        to_running, push_times, health_times, to_notified, direct_times = [], [], [], [], []
        for index in range(args.runs + 1):
            run("git", "commit", "-q", "--allow-empty", "-m", f"run {index}", cwd=clone)
            before = time.time()
            run("git", "push", "-q", "origin", "main", cwd=clone)
            returned = time.time()
            jobs = wait_for(lambda: [job for job in call(base, "GET", f"/jobs?pipeline_id={pipeline}&limit=1") if job["event"] == "push"])
            job = wait_for(lambda: (lambda j: j if j["started_at"] else None)(call(base, "GET", f"/jobs/{jobs[0]['id']}")))
            started = parse_time(job["started_at"])
            finished_job = wait_for(lambda: (lambda j: j if j["finished_at"] else None)(call(base, "GET", f"/jobs/{job['id']}")))
            arrival = wait_for(lambda: next((a for a, body in Receiver.arrivals if json.loads(body)["data"]["job"]["id"] == job["id"]), None))
            # A direct round trip to the service (new connection, as the hook's curl makes).
            t0 = time.time()
            connection = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]))
            connection.request("GET", "/health")
            connection.getresponse().read()
            connection.close()
            health = time.time() - t0
            # A direct POST of a delivery's size to the receiver.
            body = next(body for a, body in Receiver.arrivals if a == arrival)
            t0 = time.time()
            connection = http.client.HTTPConnection("127.0.0.1", receiver.server_address[1])
            connection.request("POST", "/direct", body=body, headers={"Content-Type": "application/json"})
            connection.getresponse().read()
            connection.close()
            direct = time.time() - t0
            if index == 0:
                continue  # warm-up
            to_running.append((started - returned) * 1000)
            push_times.append((returned - before) * 1000)
            health_times.append(health * 1000)
            to_notified.append((arrival - parse_time(finished_job["finished_at"])) * 1000)
            direct_times.append(direct * 1000)

        print(f"runs: {args.runs} (after one warm-up), binary: {args.binary}")
        for label, values in [
            ("git push returned -> job running (ms)", to_running),
            ("  beside: the git push itself (ms)", push_times),
            ("  beside: HTTP round trip to the service, new connection (ms)", health_times),
            ("job finished -> notification received (ms)", to_notified),
            ("  beside: direct POST to the receiver, new connection (ms)", direct_times),
        ]:
            median, p90 = summary(values)
            print(f"{label:64s} median {median:7.2f}   p90 {p90:7.2f}   max {max(values):7.2f}")
        receiver.shutdown()
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
