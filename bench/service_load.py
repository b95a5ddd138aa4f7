"""Load on the HTTP service example: concurrent backup jobs while status is polled.

    python bench/service_load.py [--jobs 20] [--rate 100] [--duration 10] [--files 200]
                                 [--file-kib 64] [--workdir DIR] [--keep]

It creates a repository and ``--jobs`` policies (each its own source folder of ``--files``
files, half of their content shared between folders), starts ``python -m examples.service`` on
a free loopback port, sends the ``--jobs`` backup requests at once, and polls job status at
``--rate`` requests a second for ``--duration`` seconds (open loop: a request is sent on
schedule whether or not the previous one has answered). It then waits for every job to end,
stops the service and runs ``check`` on the repository.

Printed: status latency (p50, p90, p99, max, in ms) over the polls, polls answered per second,
jobs completed, and the check result. The exit code is 1 when a job did not complete, the
check found a problem, or p99 is 50 ms or more.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

import snapvault as sv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the example is a folder of this repository, not a package

from examples.service.auth import hash_token, new_token  # noqa: E402

PASSWORD = "service load benchmark"
P99_LIMIT_MS = 50.0
POLLERS = 8


def make_sources(work: Path, jobs: int, files: int, file_kib: int) -> list[Path]:
    """``jobs`` source folders; half of each file's bytes are shared between folders (dedup)."""
    rng = random.Random(1)
    shared = [rng.randbytes(file_kib * 512) for _ in range(files)]
    sources = []
    for j in range(jobs):
        src = work / "data" / f"src{j:02d}"
        for i in range(files):
            path = src / f"d{i % 10}" / f"f{i:04d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(shared[i] + rng.randbytes(file_kib * 512))
        sources.append(src)
    return sources


def write_config(work: Path, url: str, tokens: dict[str, str], jobs: int, extra: list[str]) -> Path:
    (work / "password").write_text(PASSWORD + "\n")
    (work / "restores").mkdir(exist_ok=True)
    entries = "".join(
        f'[[auth.tokens]]\nname = "{role}"\nrole = "{role}"\nhash = "{hash_token(token)}"\n'
        for role, token in tokens.items()
    )
    config = work / "service.toml"
    config.write_text(
        f'[repository]\nurl = "{url}"\npassword_file = "password"\n'
        f'[restore_roots]\nrestores = "restores"\n'
        f"[jobs]\nmax_active = {max(jobs, 1)}\n" + "".join(f"{line}\n" for line in extra) + f"{entries}"
    )
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_service(config: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SNAPVAULT_SERVICE_CONFIG": str(config)}
    cmd = [sys.executable, "-m", "examples.service", "--port", str(port), "--no-access-log", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the service did not start") from None
            time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def load(base: str, tokens: dict[str, str], policies: list[str], rate: float, duration: float) -> dict[str, Any]:
    """Start the jobs at once, poll their status on schedule, then wait for all to end.

    Polls come from ``POLLERS`` threads, each with its own keep-alive connection; poll ``i``
    is due at ``start + i / rate``. Its latency is measured from when it was sent, and, to
    show any backlog (coordinated omission), its lateness from when it was due.
    """
    operator = {"Authorization": f"Bearer {tokens['operator']}"}
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    with ThreadPoolExecutor(len(policies)) as pool:

        def start(policy: str) -> httpx.Response:
            with httpx.Client(base_url=base, timeout=30) as c:
                return c.post("/jobs/backup", json={"policy": policy}, headers=operator)

        started = list(pool.map(start, policies))
    refused = [r.text for r in started if r.status_code != 202]
    if refused:
        raise SystemExit(f"{len(refused)} job requests refused: {refused[0]}")
    ids = [r.json()["id"] for r in started]
    polls = int(rate * duration)
    t_start = time.perf_counter() + 0.05
    samples: list[tuple[float, float, float]] = []  # (due, ms from sent, ms from due)
    failures: list[str] = []
    lock = threading.Lock()

    def poller(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            for i in range(k, polls, POLLERS):
                due = t_start + i / rate
                if (wait := due - time.perf_counter()) > 0:
                    time.sleep(wait)
                sent = time.perf_counter()
                try:
                    r = c.get(f"/jobs/{ids[i % len(ids)]}", headers=viewer)
                    error = None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as e:
                    error = repr(e)
                end = time.perf_counter()
                with lock:
                    samples.append((due - t_start, (end - sent) * 1000, (end - due) * 1000))
                    if error:
                        failures.append(error)

    threads = [threading.Thread(target=poller, args=(k,)) for k in range(POLLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    finals: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base, timeout=30) as c:
        deadline = time.monotonic() + 600
        while len(finals) < len(ids) and time.monotonic() < deadline:
            for job_id in ids:
                if job_id not in finals:
                    job = c.get(f"/jobs/{job_id}", headers=viewer).json()
                    if job["status"] in ("completed", "failed", "cancelled"):
                        finals[job_id] = job
            time.sleep(0.2)
    samples.sort()
    return {
        "latencies": [s[1] for s in samples],
        "lateness": [s[2] for s in samples],
        "sent": [s[0] for s in samples],
        "failures": failures,
        "elapsed": elapsed,
        "jobs": list(finals.values()),
        "unfinished": len(ids) - len(finals),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="status polls per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of polling")
    parser.add_argument("--files", type=int, default=200, help="files per source folder")
    parser.add_argument("--file-kib", type=int, default=64)
    parser.add_argument("--workdir", help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--jobs-setting", action="append", default=[], help="a [jobs] line of the configuration: max_running = 1"
    )
    parser.add_argument(
        "--service-arg", action="append", default=[], help="an option for python -m examples.service (repeatable)"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="service-load-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        sources = make_sources(work, args.jobs, args.files, args.file_kib)
        url = str(work / "repo")
        repo = sv.Repository.init(url, PASSWORD)
        names = [f"p{j:02d}" for j in range(args.jobs)]
        for name, src in zip(names, sources, strict=True):
            repo.save_policy(sv.Policy(name=name, sources=[str(src)]))
        tokens = {role: new_token() for role in ("viewer", "operator")}
        config = write_config(work, url, tokens, args.jobs, args.jobs_setting)
        port = free_port()
        proc = start_service(config, port, args.service_arg)
        try:
            out = load(f"http://127.0.0.1:{port}", tokens, names, args.rate, args.duration)
            load_after = os.getloadavg()[0]
        finally:
            proc.terminate()
            proc.wait(60)
        check = sv.Repository.open(url, PASSWORD).check(read_data=True)
        snapshots = len(sv.Repository.open(url, PASSWORD).snapshots())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    lat = out["latencies"]
    completed = [j for j in out["jobs"] if j["status"] == "completed"]
    p50, p90, p99 = (percentile(lat, q) for q in (50, 90, 99))
    data_mib = args.jobs * args.files * args.file_kib / 1024
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} at the start, {load_after:.1f} at the end")
    print(f"jobs: {args.jobs} concurrent backups of {args.files} files x {args.file_kib} KiB ({data_mib:.0f} MiB)")
    rate = len(lat) / out["elapsed"]
    print(f"status polls: {len(lat)} in {out['elapsed']:.1f}s ({rate:.0f}/s), errors {len(out['failures'])}")
    late = out["lateness"]
    print(
        f"behind schedule ms (sent late + latency): p50 {percentile(late, 50):.1f}  p99 {percentile(late, 99):.1f}"
        f"  max {max(late):.1f}"
    )
    print(
        f"status latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {max(lat):.1f}"
        f"  mean {statistics.fmean(lat):.1f}"
    )
    print(f"jobs completed: {len(completed)}/{args.jobs} (unfinished {out['unfinished']}), snapshots {snapshots}")
    if completed:
        starts = [datetime.fromisoformat(j["started"]) for j in completed]
        ends = [datetime.fromisoformat(j["ended"]) for j in completed]
        secs = [(e - s).total_seconds() for s, e in zip(starts, ends, strict=True)]
        span = (max(ends) - min(starts)).total_seconds()
        print(f"job duration s: min {min(secs):.1f}  max {max(secs):.1f}; all {args.jobs} ran within {span:.1f}s")
    print(f"check --read-data: {'ok' if check.ok else 'FAILED'} ({len(check.problems)} problems)")
    by_second: dict[int, list[float]] = {}
    for at, ms in zip(out["sent"], lat, strict=True):
        by_second.setdefault(int(at), []).append(ms)
    print("p99 per second of polling:", " ".join(f"{percentile(v, 99):.0f}" for _, v in sorted(by_second.items())))
    for f in out["failures"][:5]:
        print(f"  poll error: {f}")
    ok = len(completed) == args.jobs and check.ok and not out["failures"] and p99 < P99_LIMIT_MS
    print("result:", "PASS" if ok else "FAIL", f"(p99 < {P99_LIMIT_MS:.0f} ms, every job completed, check ok)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
