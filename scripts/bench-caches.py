#!/usr/bin/env python3
"""Pipeline caches: what a cache hit saves a real project, and what a cache costs beside tar by hand.

  scripts/bench-caches.py [--binary .build/debug/rapidflow] [--runs 3] [--part all|venv|big|channel]

Starts its own service (shell executor, 127.0.0.1, a fresh data directory in a temporary
folder, removed at the end) and measures, each figure beside a baseline taken in the same
invocation:

1. A real project's own test suite, cold against warm. Jinja2 3.1.6's sdist is downloaded
   from PyPI once (`pip download --no-deps --no-binary :all:`), and its package, tests and
   pyproject.toml are committed to a local git repository with a fully pinned
   requirements.txt (MarkupSafe, pytest, trio and their dependencies). The pipeline clones
   it, creates `.venv` unless it is there, `pip install -r requirements.txt`, runs
   `python -m pytest` (909 tests, about 3 s), and caches `.venv` and `~/.cache/pip` under
   `venv-${checksum:requirements.txt}`. `.venv/bin/python -m pip` is used rather than
   `.venv/bin/pip`: a restored venv lives in another job's workspace, and the scripts'
   shebangs still name the workspace that created it. Cold and warm jobs alternate
   (cold, warm, cold, ...) so that drift on a shared machine hits both alike; before every
   cold job each cache of the pipeline is deleted (DELETE /caches/ID), so it restores
   nothing, downloads every package from PyPI and saves a new cache, which the next warm
   job restores by its exact key. Per job: trigger -> finished is the job's `created_at` to
   its `finished_at` (both the service's clock); the step columns are each step's
   `started_at` to `finished_at` from /jobs/ID/details. The baseline is the cold job:
   printed are the medians and warm/cold (goal <= 0.5). Every job must succeed, and the
   restore step must report a miss (cold) or an exact hit (warm); otherwise its raw log is
   printed and the script exits non-zero.
2. A 500 MiB cache beside tar and zstd by hand. A pipeline without a repository whose step
   writes `data/` unless it is there (it was restored), then runs `sync` so that cache-save
   reads a tree whose writeback is over, as the by-hand runs do: 5,000 files under 89
   package folders, sizes log-uniform from 64 B to 2 MiB plus 12 files of 4-16 MiB, 500 MiB
   in all, about 45% of the files random bytes and the rest text-like (slices of a pool of
   random words; zstd -3 takes the whole tree to about 63%); all from a fixed seed, so every
   job makes the same tree. `--runs` rounds, each: every cache of the pipeline deleted; a
   job that generates the tree and whose cache-save packs it; a job whose cache-restore
   unpacks it (its step then generates nothing); and right after, on the same warm page
   cache, the same directory (the first job's workspace) packed by hand with
   `tar -cf - -C WS data | zstd -T0 -3 -q -o FILE` and unpacked into a new empty folder with
   `zstd -dc FILE | tar -xf - -C NEWDIR`. RapidFlow's figures are the cache-save and
   cache-restore steps' `started_at` to `finished_at`; rounds interleave the two sides so
   that drift on a shared machine hits both. Medians; ratio = RapidFlow / by hand (goal
   <= 1.2). The service also fsyncs a saved archive: an extra row shows the by-hand save
   plus an fsync of its file. In round 1 the restored trees (the job's and the by-hand one)
   are checked (file count and bytes) against the original.

3. Local runners (`--executor runner`), the same 500 MiB cache: `--runner-files direct` (the
   service packs and unpacks the runner's workspace itself) against `--runner-files channel`
   (the runner packs and unpacks on its side; the archive travels over its HTTP channel, as
   for a runner on another machine). Two services, rounds interleaved; the cache-save and
   cache-restore steps' durations, medians, and channel / direct.

Tables are markdown, ready for BENCHMARKS.md. The page cache is not dropped. Timings on a
busy machine are noisy; the load average is printed at the start and the end.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LIBRARY, LIBRARY_VERSION = "jinja2", "3.1.6"
REQUIREMENTS = """\
MarkupSafe==3.0.2
pytest==8.3.4
iniconfig==2.0.0
packaging==24.2
pluggy==1.5.0
trio==0.27.0
attrs==24.3.0
idna==3.10
outcome==1.3.0.post0
sniffio==1.3.1
sortedcontainers==2.4.0
"""

# Part 2's tree, written by a step of the job (so the service's workspace holds it).
TOTAL_BYTES = 500 << 20
FILE_COUNT = 5000
GENERATOR = """\
import math, os, random
rng = random.Random(20251205)
total, count, big_count = %d, %d, 12
letters = "abcdefghijklmnopqrstuvwxyz_"
words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 12))) for _ in range(3000)]
words += ["def", "return", "self", "import", "class", "if", "None", "for", "in", "=", "(", ")", ":", "\\n", "\\n    "] * 40
pool = " ".join(rng.choices(words, k=5_000_000)).encode()
big = [rng.randint(4 << 20, 16 << 20) for _ in range(big_count)]
rest = total - sum(big)
small = [math.exp(rng.uniform(math.log(64), math.log(2 << 20))) for _ in range(count - big_count)]
scale = rest / sum(small)
small = [max(1, int(size * scale)) for size in small]
small[small.index(max(small))] += rest - sum(small)
sizes = big + small
rng.shuffle(sizes)
for index, size in enumerate(sizes):
    folder = "data/pkg%%02d/sub%%d" %% (index %% 89, index %% 7)
    os.makedirs(folder, exist_ok=True)
    if rng.random() < 0.45:
        name, body = "f%%05d.so" %% index, rng.randbytes(size)
    else:
        start = rng.randrange(len(pool) - size) if size < len(pool) else 0
        body = pool[start:start + size] if size < len(pool) else (pool * (size // len(pool) + 1))[:size]
        name = "f%%05d.py" %% index
    with open(os.path.join(folder, name), "wb") as out:
        out.write(body)
print("wrote", len(sizes), "files,", sum(sizes), "bytes")
""" % (TOTAL_BYTES, FILE_COUNT)


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {path}: HTTP {error.code}: {error.read().decode(errors='replace')[:2000]}")
    if method == "GET" and path.endswith("/logs/raw"):
        return raw.decode(errors="replace")
    return json.loads(raw)["data"] if raw else None


def start_service(binary, work, name="data", executor=("--executor", "shell")):
    data_dir = os.path.join(work, name)
    log_path = os.path.join(work, f"{name}-service.log")
    log = open(log_path, "w")
    service = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--data-dir", data_dir, "--port", "0", *executor,
         "--allow-local-repos", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        text = open(log_path).read()
        if "listening on http://127.0.0.1:" in text:
            port = text.split("listening on http://127.0.0.1:")[1].split()[0]
            return service, f"http://127.0.0.1:{port}", data_dir
        if service.poll() is not None:
            break
        time.sleep(0.05)
    stop_service(service)
    sys.stderr.write(open(log_path).read()[-4000:])
    raise SystemExit("the service did not start")


def stop_service(service):
    if service is None or service.poll() is not None:
        return
    service.send_signal(signal.SIGTERM)
    try:
        service.wait(timeout=10)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait(timeout=10)


def run_job(base, pipeline, timeout):
    """Triggers a job of `pipeline`, waits for its end; returns (job, details)."""
    job_id = call(base, "POST", f"/pipelines/{pipeline}/jobs", {})["id"]
    deadline = time.time() + timeout
    job = None
    while time.time() < deadline:
        job = call(base, "GET", f"/jobs/{job_id}")
        if job["status"] in ("success", "failed", "cancelled") and job.get("finished_at"):
            break
        time.sleep(0.1)
    details = call(base, "GET", f"/jobs/{job_id}/details")
    if job is None or job["status"] != "success":
        print(f"\njob {job_id} ended {job and job['status']!r} (or timed out after {timeout} s); its log:\n")
        print(call(base, "GET", f"/jobs/{job_id}/logs/raw"))
        raise SystemExit(1)
    return job, details


def fail_with_log(base, job, message):
    print(f"\njob {job['id']}: {message}; its log:\n")
    print(call(base, "GET", f"/jobs/{job['id']}/logs/raw"))
    raise SystemExit(1)


def step(details, kind=None, name=None):
    """The first step of `kind` (or named `name`) and its duration in seconds."""
    for entry in details["steps"]:
        if (kind and entry["type"] == kind) or (name and entry.get("name") == name):
            return entry, parse_time(entry["finished_at"]) - parse_time(entry["started_at"])
    raise SystemExit(f"no step {kind or name} in job {details.get('job', {}).get('id')}")


def total_seconds(job):
    return parse_time(job["finished_at"]) - parse_time(job["created_at"])


def delete_caches(base, pipeline):
    for cache in call(base, "GET", f"/caches?pipeline_id={pipeline}"):
        call(base, "DELETE", f"/caches/{cache['id']}")


def timed(command):
    started = time.perf_counter()
    subprocess.run(["bash", "-eo", "pipefail", "-c", command], check=True)
    return time.perf_counter() - started


def tree_size(path):
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(folder, name)).st_size
    return files, size


def loadavg():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def sh(command, cwd=None):
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=300).stdout


def make_repository(work, python):
    """A local git repository holding Jinja2's package and tests and the pinned requirements."""
    sdists = os.path.join(work, "sdist")
    sh([python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps", "--no-binary", ":all:",
        f"{LIBRARY}=={LIBRARY_VERSION}", "-d", sdists])
    archive = next(os.path.join(sdists, name) for name in os.listdir(sdists) if name.endswith(".tar.gz"))
    with tarfile.open(archive) as opened:
        opened.extractall(sdists, filter="data")
    source = next(os.path.join(sdists, name) for name in os.listdir(sdists) if os.path.isdir(os.path.join(sdists, name)))
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    shutil.copytree(os.path.join(source, "src", LIBRARY), os.path.join(repo, LIBRARY))
    shutil.copytree(os.path.join(source, "tests"), os.path.join(repo, "tests"))
    for name in ("pyproject.toml", "LICENSE.txt"):
        shutil.copy(os.path.join(source, name), repo)
    with open(os.path.join(repo, "requirements.txt"), "w") as out:
        out.write(REQUIREMENTS)
    with open(os.path.join(repo, ".gitignore"), "w") as out:
        out.write(".venv/\n__pycache__/\n.pytest_cache/\n")
    sh(["git", "init", "-q", "--initial-branch=main"], cwd=repo)
    sh(["git", "add", "-A"], cwd=repo)
    sh(["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", "commit", "-q", "-m",
        f"{LIBRARY} {LIBRARY_VERSION} with pinned requirements"], cwd=repo)
    return repo


def yaml_string(text):
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(text)


def part_venv(base, work, python, runs):
    repo = make_repository(work, python)
    install = (f"test -x .venv/bin/python || {python} -m venv .venv\n"
               ".venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt")
    config = f"""\
repo: {repo}
cache:
  - key: "venv-${{checksum:requirements.txt}}"
    paths: [".venv", "~/.cache/pip"]
    restore_keys: ["venv-"]
steps:
  - name: install
    content: {yaml_string(install)}
  - name: test
    content: {yaml_string(".venv/bin/python -m pytest -q -p no:cacheprovider")}
"""
    pipeline = call(base, "POST", "/pipelines", {"name": "bench-caches-venv", "config": config})["id"]

    rows, totals = [], {"cold": [], "warm": []}
    cache_size = None
    for index in range(runs * 2):
        kind = "cold" if index % 2 == 0 else "warm"
        if kind == "cold":
            delete_caches(base, pipeline)
        job, details = run_job(base, pipeline, timeout=600)
        restore, restore_s = step(details, kind="cache-restore")
        save, save_s = step(details, kind="cache-save")
        _, git_s = step(details, kind="git")
        _, install_s = step(details, name="install")
        test_entry, test_s = step(details, name="test")
        if kind == "cold" and "miss" not in restore["output"]:
            fail_with_log(base, job, "a cold job restored a cache")
        if kind == "warm" and ": hit," not in restore["output"]:
            fail_with_log(base, job, "a warm job did not restore its cache by exact key")
        if kind == "cold":
            caches = call(base, "GET", f"/caches?pipeline_id={pipeline}")
            if len(caches) != 1:
                fail_with_log(base, job, f"a cold job left {len(caches)} caches, not 1")
            cache_size = caches[0]["size_bytes"]
        passed = next((line.strip() for line in reversed(test_entry["output"].splitlines()) if " passed" in line), "?")
        totals[kind].append(total_seconds(job))
        rows.append((index + 1, kind, job["id"], total_seconds(job), git_s, restore_s, install_s, test_s, save_s, passed))

    print(f"## Part 1: {LIBRARY} {LIBRARY_VERSION} test suite, cold vs warm cache\n")
    print("cache: `.venv` + `~/.cache/pip`, key `venv-${checksum:requirements.txt}`; "
          f"size of the saved cache (zstd): {cache_size / 1048576:.1f} MiB\n")
    print("| run | cache | job | trigger → finished (s) | git (s) | cache-restore (s) | install (s) | test (s) | cache-save (s) | pytest |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run, kind, job_id, total, git_s, restore_s, install_s, test_s, save_s, passed in rows:
        print(f"| {run} | {kind} | {job_id} | {total:.2f} | {git_s:.2f} | {restore_s:.2f} | {install_s:.2f} | {test_s:.2f} | {save_s:.2f} | {passed} |")
    cold, warm = statistics.median(totals["cold"]), statistics.median(totals["warm"])
    ratio = warm / cold
    print()
    print("| measure | cold (baseline) | warm (cache hit) | warm / cold | goal |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(f"| trigger → finished, median of {runs} (s) | {cold:.2f} | {warm:.2f} | {ratio:.2f} | ≤ 0.5: {'met' if ratio <= 0.5 else 'NOT met'} |")
    print()
    sys.stdout.flush()


def big_config(python):
    # `sync`: the tree's writeback is over before cache-save reads it, as for the by-hand runs.
    generate = f"test -d data || {python} - <<'EOF'\n{GENERATOR}EOF\nsync\n"
    return f"""\
cache:
  - key: "data-500mib-v1"
    paths: ["data"]
steps:
  - name: generate
    content: {yaml_string(generate)}
"""


def save_and_restore(base, pipeline):
    """One round on a service: a job that generates the tree and saves it, one that restores it."""
    delete_caches(base, pipeline)
    cold, cold_details = run_job(base, pipeline, timeout=900)
    save_entry, save_s = step(cold_details, kind="cache-save")
    if " saved " not in save_entry["output"]:
        fail_with_log(base, cold, "the generating job saved no cache")
    warm, warm_details = run_job(base, pipeline, timeout=900)
    restore_entry, restore_s = step(warm_details, kind="cache-restore")
    if ": hit," not in restore_entry["output"]:
        fail_with_log(base, warm, "the second job did not restore the cache by exact key")
    return cold, warm, warm_details, save_entry, save_s, restore_entry, restore_s


def part_channel(binary, work, python, runs):
    """Local runners: caches read and written by the service directly, against over the runner's channel."""
    services = []
    try:
        sides = {}
        for name, files in (("direct", "direct"), ("channel", "channel")):
            service, base, data_dir = start_service(binary, work, name=f"data-{name}", executor=("--executor", "runner", "--runner-files", files))
            services.append(service)
            pipeline = call(base, "POST", "/pipelines", {"name": f"bench-caches-{name}", "config": big_config(python)})["id"]
            sides[name] = (base, data_dir, pipeline)
        rows = []
        for index in range(runs):
            row = {}
            for name, (base, data_dir, pipeline) in sides.items():
                cold, warm, _, _, save_s, _, restore_s = save_and_restore(base, pipeline)
                if index == 0:
                    original = tree_size(os.path.join(data_dir, "runner-workspaces", f"job-{cold['id']}", "data"))
                    restored = tree_size(os.path.join(data_dir, "runner-workspaces", f"job-{warm['id']}", "data"))
                    if original != restored or original != (FILE_COUNT, TOTAL_BYTES):
                        raise SystemExit(f"{name}: the trees differ: generated {original}, restored {restored}")
                row[name] = (save_s, restore_s)
            rows.append(row)
        median = lambda name, i: statistics.median(row[name][i] for row in rows)
        print(f"## Part 3: local runners, the {TOTAL_BYTES >> 20} MiB cache directly against over the runner's channel\n")
        print("`--executor runner --runner-files direct` (the service reads and writes the runner's workspace) against "
              "`--runner-files channel` (the runner packs and unpacks; the archive travels over its HTTP channel), rounds interleaved\n")
        print("| round | direct: save (s) | channel: save (s) | direct: restore (s) | channel: restore (s) |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for number, row in enumerate(rows, 1):
            print(f"| {number} | {row['direct'][0]:.2f} | {row['channel'][0]:.2f} | {row['direct'][1]:.2f} | {row['channel'][1]:.2f} |")
        print()
        print(f"| measure (median of {runs}) | direct | channel | channel / direct |")
        print("| --- | ---: | ---: | ---: |")
        for label, i in (("cache-save (s)", 0), ("cache-restore (s)", 1)):
            print(f"| {label} | {median('direct', i):.2f} | {median('channel', i):.2f} | {median('channel', i) / median('direct', i):.2f} |")
        print()
    finally:
        for service in services:
            stop_service(service)


def part_big(base, work, data_dir, python, runs):
    pipeline = call(base, "POST", "/pipelines", {"name": "bench-caches-500mib", "config": big_config(python)})["id"]
    scratch = os.path.join(work, "by-hand")
    os.makedirs(scratch)
    archive = os.path.join(scratch, "data.tar.zst")
    rows = []
    for index in range(runs):
        # RapidFlow: a job that generates the tree and saves it, then one that restores it.
        cold, warm, warm_details, save_entry, save_s, restore_entry, restore_s = save_and_restore(base, pipeline)
        _, generate_warm_s = step(warm_details, name="generate")
        cache_size = call(base, "GET", f"/caches?pipeline_id={pipeline}")[0]["size_bytes"]
        workspace = os.path.join(data_dir, "workspaces", f"job-{cold['id']}")
        if index == 0:
            original = tree_size(os.path.join(workspace, "data"))
            restored = tree_size(os.path.join(data_dir, "workspaces", f"job-{warm['id']}", "data"))
            if original != restored or original != (FILE_COUNT, TOTAL_BYTES):
                raise SystemExit(f"the trees differ: generated {original}, restored {restored}, expected {(FILE_COUNT, TOTAL_BYTES)}")

        # By hand, right after, on the same page cache: the tree of the job that saved.
        if os.path.exists(archive):
            os.remove(archive)
        hand_save = timed(f"tar -cf - -C '{workspace}' data | zstd -T0 -3 -q -o '{archive}'")
        started = time.perf_counter()
        descriptor = os.open(archive, os.O_RDONLY)
        os.fsync(descriptor)
        os.close(descriptor)
        hand_fsync = time.perf_counter() - started
        target = os.path.join(scratch, f"restore-{index}")
        os.makedirs(target)
        hand_restore = timed(f"zstd -dc '{archive}' | tar -xf - -C '{target}'")
        if index == 0 and tree_size(os.path.join(target, "data")) != original:
            raise SystemExit("the by-hand restore differs from the original tree")
        shutil.rmtree(target)
        rows.append(dict(
            cold=cold["id"], warm=warm["id"], save=save_s, restore=restore_s, generate_warm=generate_warm_s,
            hand_save=hand_save, hand_fsync=hand_save + hand_fsync, hand_restore=hand_restore,
            cache_size=cache_size, archive_size=os.path.getsize(archive),
            save_line=save_entry["output"].strip().splitlines()[-1], restore_line=restore_entry["output"].strip().splitlines()[-1]))

    median = lambda key: statistics.median(row[key] for row in rows)
    print(f"## Part 2: a {TOTAL_BYTES >> 20} MiB cache ({FILE_COUNT} files) beside tar + zstd by hand\n")
    print(f"{runs} rounds; each: a job that generates the tree and saves it, a job that restores it, "
          "then by hand the same save (from the first job's workspace) and restore (into a new empty folder)\n")
    print("| round | save job | cache-save (s) | by hand: save (s) | save + fsync (s) | restore job | cache-restore (s) | by hand: restore (s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for number, row in enumerate(rows, 1):
        print(f"| {number} | {row['cold']} | {row['save']:.2f} | {row['hand_save']:.2f} | {row['hand_fsync']:.2f} "
              f"| {row['warm']} | {row['restore']:.2f} | {row['hand_restore']:.2f} |")
    print()
    print(f"| measure (median of {runs}) | RapidFlow | by hand | ratio | goal |")
    print("| --- | ---: | ---: | ---: | --- |")
    for label, ours, theirs, goal in [
        ("save: `tar -cf - -C WS data \\| zstd -T0 -3 -q -o FILE` (s)", median("save"), median("hand_save"), True),
        ("save by hand + fsync of FILE, as the service does (s)", median("save"), median("hand_fsync"), False),
        ("restore: `zstd -dc FILE \\| tar -xf - -C NEWDIR` (s)", median("restore"), median("hand_restore"), True),
    ]:
        verdict = ("≤ 1.2: " + ("met" if ours / theirs <= 1.2 else "NOT met")) if goal else "(context)"
        print(f"| {label} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} | {verdict} |")
    cache_size, archive_size = rows[-1]["cache_size"], rows[-1]["archive_size"]
    print(f"| archive size (MiB) | {cache_size / 1048576:.1f} | {archive_size / 1048576:.1f} | {cache_size / archive_size:.2f} | |")
    print()
    print(f"RapidFlow's own lines (round 1): `{rows[0]['save_line']}`; `{rows[0]['restore_line']}`; "
          f"the restoring job's generate step took {rows[0]['generate_warm']:.2f} s (nothing to do)\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/debug/rapidflow"))
    parser.add_argument("--runs", type=int, default=3, help="cold and warm jobs of part 1, rounds of part 2 (default 3)")
    parser.add_argument("--part", choices=["all", "venv", "big", "channel"], default="all")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        raise SystemExit(f"{args.binary} is missing: build it (swift build) or pass --binary")
    if not 1 <= args.runs <= 20:
        raise SystemExit("--runs must be from 1 to 20")
    for tool in ("git", "tar", "zstd"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on the PATH")
    python = os.path.realpath(sys.executable)

    started = time.time()
    print(f"# Cache benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    print(f"binary: `{args.binary}`; {os.cpu_count()} cores; load average at start: {loadavg()}; "
          f"python for the jobs: `{python}`; `{sh(['zstd', '--version']).strip()}`\n")
    sys.stdout.flush()
    work = tempfile.mkdtemp(prefix="rapidflow-bench-caches-")
    service = None
    try:
        service, base, data_dir = start_service(args.binary, work)
        if args.part in ("all", "venv"):
            part_venv(base, work, python, args.runs)
        if args.part in ("all", "big"):
            part_big(base, work, data_dir, python, args.runs)
        if args.part in ("all", "channel"):
            part_channel(args.binary, work, python, args.runs)
        print(f"load average at the end: {loadavg()}; total time of the benchmark: {time.time() - started:.0f} s")
    finally:
        stop_service(service)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
