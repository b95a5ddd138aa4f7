"""Side-by-side benchmark of snapvault, restic and borg on the shared datasets, large trees and real trees.

    python bench/run.py [--reps 3] [--data DIR] [--work DIR] [--cache DIR]
                        [--skip-scale] [--scale-files 200000,1000000] [--processes 2] [--skip-real]
                        [--skip-s3] [--skip-prune] [--only prune|scale|real]
                        [--out docs/benchmarks.md] [--results bench/results.json]

Builds v1 and v2 with ../shared/bench/make_datasets.py (unless --data has them), then for each
repetition and each tool (interleaved, fresh repositories, encryption on, borg at zstd,3,
restic's default compression) measures: first backup of v1, unchanged re-backup of v1, backup
of v2 from the same source path, full restore of the latest snapshot into an empty directory,
check --read-data, repository size, and the peak RSS of every step (wait4 rusage of the child).
``cp -a v1`` is the reference for how fast this disk takes writes. Medians over repetitions;
ratios snapvault/peer are computed within this run. Writes docs/benchmarks.md and
bench/results.json (``--out`` elsewhere puts the results next to it, unless ``--results``).

Then, each in its own module:

- scale (bench/scale.py): 200,000 and 1,000,000 small files (``--scale-files``), first backup
  and unchanged re-backup with peak RSS, one run per tool; the trees are generated once into
  the cache (``--cache``, default ~/.cache/snapvault-bench) and reused while their generator and
  parameters are the same, and read once before the first tool; ``snapvault backup --processes
  N`` is measured there too as the tool ``snapvault-pN`` (``--processes``, default 2; 1 leaves
  it out), its peak RSS summed over its processes;
- real trees (bench/realtrees.py): a copy of this interpreter's site-packages and 100,000
  generated text files, first / unchanged / changed backup and restore, ``cp -a`` of the same
  tree once a repetition (``--real-limit N`` shrinks both to N files, to try the harness);
- forget and prune (bench/prune_bench.py): ten snapshots (v1, v2 and eight days of
  bench/days.py) forgotten down to the latest two and pruned, timed per tool.

``--only prune|scale|real`` runs just that section and keeps every other one as the results
file has it; a section a run skips is carried over from the last run, marked with its date.
"Against the targets" (bench/targets.py) is computed from whatever the results hold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carry import carry_over, uncarry, upgrade_scales
from prune_bench import VARIANTS, bench_prune, render_prune
from realtrees import REAL_TREES, backup_steps, bench_real, render_real
from scale import bench_scale_size, render_scales
from targets import render_targets

ROOT = Path(__file__).resolve().parent.parent
MAKE_DATASETS = ROOT.parent / "shared" / "bench" / "make_datasets.py"
PASSWORD = "benchmark password"
STEPS4 = ("backup_v1", "rebackup_v1", "backup_v2", "restore")
STEPS = [*STEPS4, "check_read_data"]
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_RESULTS = ROOT / "bench" / "results.json"
CACHE_HINT = "$XDG_CACHE_HOME/snapvault-bench or ~/.cache/snapvault-bench"
ONLY = ("prune", "scale", "real")


@dataclass
class Measure:
    seconds: float
    max_rss_kib: int


_GNU_TIME = shutil.which("time") and Path("/usr/bin/time").exists()


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (from each of its threads' ``children`` file)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def tree_rss_kib(root: int) -> int:
    """The resident memory (KiB) of process ``root`` and all its descendants, now.

    Follows the descendants only (``/proc/PID/task/TID/children``), not every process of the
    machine, so that sampling costs little next to the command it measures.
    """
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
        todo.extend(_children(pid))
    return total


class TreeSampler:
    """The peak of :func:`tree_rss_kib` of a process, sampled every ``every`` seconds on a thread
    until stopped: the memory of a command that starts processes of its own, summed (GNU time
    reports the largest single process)."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, tree_rss_kib(self.pid))
            self._done.wait(self.every)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, tree: bool = False) -> Measure:
    """Run ``cmd`` to completion; wall time and the child's peak RSS.

    Dirty pages are written back first, so no step pays for the writes of the one before. The
    peak RSS comes from GNU time (``/usr/bin/time -f %M``), which forks from its own small
    process: Linux carries the peak RSS of a process across exec, so measuring the child of
    this (large) Python process with wait4 would report this process's size as a floor. With
    ``tree`` (a command that starts processes: ``snapvault backup --processes``) it is the
    larger of that and the sampled peak of the sum over the command's process tree.
    """
    os.sync()
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        argv = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd] if _GNU_TIME else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        sampler = TreeSampler(proc.pid) if tree else None
        _, status, usage = os.wait4(proc.pid, 0)
        summed = sampler.stop() if sampler is not None else 0
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        proc.returncode = code
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {code}: {err.strip()[-500:]}")
        max_rss = int(rss.read().strip().splitlines()[-1]) if _GNU_TIME else usage.ru_maxrss
        max_rss = max(max_rss, summed)
    return Measure(elapsed, max_rss)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def sync_tree(src: Path, dst: Path) -> None:
    """Make ``dst`` equal ``src`` the way rsync would: untouched files keep their inode."""
    src_files = {p.relative_to(src) for p in src.rglob("*") if not p.is_dir() or p.is_symlink()}
    dst_files = {p.relative_to(dst) for p in dst.rglob("*") if not p.is_dir() or p.is_symlink()}
    for rel in dst_files - src_files:
        (dst / rel).unlink()
    for rel in sorted(src_files):
        s, d = src / rel, dst / rel
        ss = s.lstat()
        if d.exists() or d.is_symlink():
            ds = d.lstat()
            if ds.st_size == ss.st_size and ds.st_mtime_ns == ss.st_mtime_ns:
                continue
            d.unlink()
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, d, follow_symlinks=False)


class Tool:
    name = ""
    binary = ""

    def __init__(self, work: Path) -> None:
        self.work = work

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def env(self) -> dict[str, str]:
        return {}

    def init(self, repo: Path) -> None:
        raise NotImplementedError

    def backup(self, repo: Path, src: Path, n: int) -> list[str]:
        raise NotImplementedError

    def restore(self, repo: Path, target: Path, n: int) -> tuple[list[str], Path | None]:
        raise NotImplementedError

    def check(self, repo: Path) -> list[str]:
        raise NotImplementedError

    version_args = ("--version",)

    def version(self) -> str:
        out = subprocess.run([self.binary, *self.version_args], capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


class Snapvault(Tool):
    name = "snapvault"

    def __init__(self, work: Path, processes: int = 1) -> None:
        super().__init__(work)
        self.binary = str(Path(sys.executable).parent / "snapvault")
        #: ``backup --processes``: more than one names the tool ``snapvault-pN`` and has its
        #: memory summed over its processes.
        self.processes = processes
        if processes > 1:
            self.name = f"snapvault-p{processes}"
        self.tree_rss = processes > 1

    def available(self) -> bool:
        return Path(self.binary).exists()

    def env(self) -> dict[str, str]:
        return {"SNAPVAULT_PASSWORD": PASSWORD}

    def init(self, repo: Path) -> None:
        run([self.binary, "-r", str(repo), "init"], env=self.env())

    def backup(self, repo: Path, src: Path, n: int) -> list[str]:
        extra = ["--processes", str(self.processes)] if self.processes > 1 else []
        return [self.binary, "-r", str(repo), "backup", str(src), "--host", "bench", *extra]

    def restore(self, repo: Path, target: Path, n: int) -> tuple[list[str], Path | None]:
        return [self.binary, "-r", str(repo), "restore", "latest", "--target", str(target)], None

    def check(self, repo: Path) -> list[str]:
        return [self.binary, "-r", str(repo), "check", "--read-data"]


class Restic(Tool):
    name = "restic"
    binary = "restic"
    version_args = ("version",)

    def env(self) -> dict[str, str]:
        return {"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(self.work / "restic-cache")}

    def init(self, repo: Path) -> None:
        run(["restic", "-q", "-r", str(repo), "init"], env=self.env())

    def backup(self, repo: Path, src: Path, n: int) -> list[str]:
        return ["restic", "-q", "-r", str(repo), "backup", "--host", "bench", str(src)]

    def restore(self, repo: Path, target: Path, n: int) -> tuple[list[str], Path | None]:
        return ["restic", "-q", "-r", str(repo), "restore", "latest", "--target", str(target)], None

    def check(self, repo: Path) -> list[str]:
        return ["restic", "-q", "-r", str(repo), "check", "--read-data"]


class Borg(Tool):
    name = "borg"
    binary = "borg"

    def env(self) -> dict[str, str]:
        return {"BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(self.work / "borg-base")}

    def init(self, repo: Path) -> None:
        run(["borg", "init", "-e", "repokey", str(repo)], env=self.env())

    def backup(self, repo: Path, src: Path, n: int) -> list[str]:
        return ["borg", "create", "--compression", "zstd,3", f"{repo}::a{n}", str(src)]

    def restore(self, repo: Path, target: Path, n: int) -> tuple[list[str], Path | None]:
        # borg extracts into the current directory.
        return ["borg", "extract", f"{repo}::a{n}"], target

    def check(self, repo: Path) -> list[str]:
        return ["borg", "check", "--verify-data", str(repo)]


def bench_tool(tool: Tool, data: Path, work: Path) -> dict[str, float | int]:
    """One repetition of every step for one tool, in fresh directories."""
    base = Path(tempfile.mkdtemp(prefix=f"{tool.name}-", dir=work))
    src, repo, target = base / "src", base / "repo", base / "restore"
    shutil.copytree(data / "v1", src, symlinks=True)
    tool.init(repo)
    out = backup_steps(tool, repo, src, target, lambda: sync_tree(data / "v2", src), STEPS4, run=run)
    m = run(tool.check(repo), env=tool.env())
    out["check_read_data"], out["check_read_data_rss"] = m.seconds, m.max_rss_kib
    out["repo_bytes"] = du(repo)
    shutil.rmtree(base)
    return out


def bench_cp(data: Path, work: Path) -> float:
    dst = work / "cp-target"
    m = run(["cp", "-a", str(data / "v1"), str(dst)])
    shutil.rmtree(dst)
    return m.seconds


def bench_s3(data: Path, work: Path, tools: list[Tool]) -> dict[str, dict[str, float]]:
    """Backup and restore throughput against one moto S3 server on loopback, for snapvault and
    restic (borg has no S3 backend). The source is v1's stdlib tree (many small files)."""
    import logging
    import socket

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    src = data / "v1" / "stdlib"
    nbytes = sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    out: dict[str, dict[str, float]] = {}
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_boto_creds(creds))
        for t in tools:
            if t.name == "borg":
                continue
            bucket = f"bench-{t.name}"
            s3.create_bucket(Bucket=bucket)
            target = Path(tempfile.mkdtemp(prefix=f"s3-restore-{t.name}-", dir=work))
            env = {**t.env(), **creds}
            if t.name == "snapvault":
                repo = [t.binary, "-r", f"s3://{bucket}/vault", "-o", f'client_kwargs={{"endpoint_url": "{endpoint}"}}']
                run([*repo, "init"], env=env)
                b = run([*repo, "backup", str(src)], env=env)
                r = run([*repo, "restore", "latest", "--target", str(target)], env=env)
            else:
                repo = ["restic", "-q", "-r", f"s3:{endpoint}/{bucket}/restic"]
                run([*repo, "init"], env=env)
                b = run([*repo, "backup", str(src)], env=env)
                r = run([*repo, "restore", "latest", "--target", str(target)], env=env)
            out[t.name] = {
                "backup_s": b.seconds,
                "backup_mib_s": nbytes / 2**20 / b.seconds,
                "restore_s": r.seconds,
                "restore_mib_s": nbytes / 2**20 / r.seconds,
            }
            shutil.rmtree(target)
    finally:
        server.stop()
    return out


def _boto_creds(creds: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": creds["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"]}


def bench_prunes(data: Path, work: Path, tools: list[Tool], reps: int) -> dict[str, object]:
    """The forget-and-prune section: ``reps`` repetitions of bench_prune per column, interleaved."""
    columns: list[tuple[str, Tool, list[str]]] = []
    for t in tools:
        if t.name == "snapvault":
            columns += [(name, t, options) for name, options in VARIANTS.items()]
        else:
            columns.append((t.name, t, []))
    rows: dict[str, list[dict[str, float | int]]] = {name: [] for name, _, _ in columns}
    for rep in range(reps):
        for name, t, options in columns if rep % 2 == 0 else list(reversed(columns)):
            print(f"prune rep {rep + 1}/{reps}: {name} ...", flush=True)
            rows[name].append(bench_prune(t, data, work, run=run, sync_tree=sync_tree, du=du, options=options))
    return {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "reps": reps,
        "versions": {t.name: t.version() for t in tools},
        "medians": {name: {k: median(r, k) for k in r[0]} for name, r in rows.items() if r},
        "runs": rows,
    }


def median(rows: list[dict[str, float | int]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    py = platform.python_version()
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Python {py}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def render(results: dict[str, Any]) -> str:
    tools: dict[str, dict[str, float]] = results["medians"]
    peers = [t for t in ("restic", "borg") if t in tools]
    sv = tools.get("snapvault", {})
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `nox -s bench` on {results['machine']}, {results['date']}.",
        f"Tools: {', '.join(results['versions'][t] for t in tools)}.",
        f"Datasets: `make_datasets.py` v1 ({results['v1']}) and v2 ({results['v2']}).",
        f"Medians of {results['reps']} repetitions, tools interleaved, fresh repositories each time, encryption on;",
        "borg at `zstd,3`, restic at its default compression, snapvault at its default (zstd 3).",
        "Times in seconds (whole command, start-up included), RSS in MiB, sizes in MiB.",
        f"`cp -a v1` (the disk's pace for the same tree): {results['cp_a_v1']:.2f} s.",
        "",
        *render_targets(results),
        "",
        "## Shared datasets",
        "",
    ]
    head = "| step | " + " | ".join(tools) + " | " + " | ".join(f"snapvault/{p}" for p in peers) + " |"
    lines += [head, "|" + "---|" * (1 + len(tools) + len(peers))]
    for step in STEPS:
        row = [f"{tools[t][step]:.2f}" for t in tools]
        rat = [ratio(sv.get(step, 0), tools[p][step]) for p in peers]
        lines.append(f"| {step} | " + " | ".join(row) + " | " + " | ".join(rat) + " |")
    for step in STEPS:
        key = f"{step}_rss"
        row = [f"{tools[t][key] / 1024:.0f}" for t in tools]
        rat = [ratio(sv.get(key, 0), tools[p][key]) for p in peers]
        lines.append(f"| {step} peak RSS | " + " | ".join(row) + " | " + " | ".join(rat) + " |")
    row = [f"{tools[t]['repo_bytes'] / 2**20:.0f}" for t in tools]
    rat = [ratio(sv.get("repo_bytes", 0), tools[p]["repo_bytes"]) for p in peers]
    lines.append("| repository size | " + " | ".join(row) + " | " + " | ".join(rat) + " |")
    if "restore" in sv:
        lines += ["", f"snapvault restore / `cp -a`: {ratio(sv['restore'], float(results['cp_a_v1']))}"]
    lines += render_scales(results)
    lines += render_real(results)
    s3: dict[str, dict[str, float]] = results.get("s3", {})
    if s3:
        lines += [
            "",
            "## S3 (moto server on loopback): v1's stdlib tree",
            "",
            "| tool | backup (s) | backup MiB/s | restore (s) | restore MiB/s |",
            "|---|---|---|---|---|",
        ]
        for t, r in s3.items():
            cells = (
                f"{r['backup_s']:.2f}",
                f"{r['backup_mib_s']:.1f}",
                f"{r['restore_s']:.2f}",
                f"{r['restore_mib_s']:.1f}",
            )
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
    carried = results.get("carried")
    if carried:
        lines += ["", f"Sections carried over from an earlier run of this harness: {', '.join(carried)}."]
    prune: dict[str, object] = results.get("prune", {})
    if prune:
        lines += render_prune(prune)
    notes = ROOT / "bench" / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def _options() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", type=Path, help="folder holding v1 and v2 (built if missing)")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--cache", type=Path, help=f"where generated trees are kept between runs (default: {CACHE_HINT})")
    ap.add_argument("--skip-scale", action="store_true", help="skip the scale rows (every size)")
    ap.add_argument("--skip-real", action="store_true", help="skip the real trees (site-packages, text)")
    ap.add_argument("--skip-s3", action="store_true", help="skip the S3 (moto) throughput run")
    ap.add_argument("--skip-prune", action="store_true", help="skip the forget-and-prune run")
    ap.add_argument("--only", choices=ONLY, help="run only this section; the others stay as the results file has them")
    ap.add_argument("--scale-files", default="200000,1000000", help="sizes of the scale trees, comma-separated")
    ap.add_argument("--real-limit", type=int, help="shrink the real trees to this many files (to try the harness)")
    ap.add_argument("--real-small", action="store_const", const=400, dest="real_limit", help=argparse.SUPPRESS)
    ap.add_argument("--tools", default="snapvault,restic,borg")
    ap.add_argument(
        "--processes",
        type=int,
        default=2,
        help="also measure `snapvault backup --processes N` on the scale trees (1: not)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--results", type=Path, help="results file (default: bench/results.json, or next to --out when that is given)"
    )
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from the results file")
    return ap.parse_args()


def main() -> int:
    args = _options()
    results_file: Path = args.results or (DEFAULT_RESULTS if args.out == DEFAULT_OUT else args.out.with_suffix(".json"))
    if args.render:
        text = render(json.loads(results_file.read_text()))
        args.out.write_text(text)
        print(text)
        return 0
    cache = _cache_dir(args.cache)
    sizes = [] if args.skip_scale else [int(n) for n in args.scale_files.split(",") if n.strip()]
    real = [] if args.skip_real else list(REAL_TREES)
    work = args.work or Path(tempfile.mkdtemp(prefix="snapvault-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data or work / "data"
    if args.only in (None, "prune") and not (data / "v1").exists():
        print(f"building datasets in {data} ...", flush=True)
        subprocess.run([sys.executable, str(MAKE_DATASETS), str(data)], check=True)
    all_tools = {"snapvault": Snapvault(work), "restic": Restic(work), "borg": Borg(work)}
    tools = []
    for name in args.tools.split(","):
        t = all_tools[name]
        if t.available():
            tools.append(t)
        else:
            print(f"notice: {name} is not installed; skipped (apt-get install restic borgbackup)", flush=True)
    # The last run's results: those of --results when it has some, else bench/results.json (read only).
    previous_file = results_file if results_file.exists() else DEFAULT_RESULTS
    previous = json.loads(previous_file.read_text()) if previous_file.exists() else {}
    if args.only:
        if not previous:
            print(f"--only {args.only} needs the results of a full run", file=sys.stderr)
            return 1
        results = previous
        upgrade_scales(results)
        if args.only == "prune":
            results["prune"] = bench_prunes(data, work, tools, args.reps)
            uncarry(results, "prune")
    else:
        results = bench_shared(data, work, tools, args.reps)
        carry_over(results, previous, skip_s3=args.skip_s3, skip_prune=args.skip_prune, sizes=sizes, real=real)
        _write(results, args.out, results_file)
        if not args.skip_s3:
            print("S3 throughput against moto ...", flush=True)
            results["s3"] = bench_s3(data, work, tools)
            _write(results, args.out, results_file)
    scale_tools = list(tools)
    if args.processes > 1 and any(t.name == "snapvault" for t in tools):
        scale_tools.insert(1, Snapvault(work, processes=args.processes))
    if args.only in (None, "scale"):
        for n in sizes:
            results["scales"][str(n)] = bench_scale_size(scale_tools, n, cache, work, run=run)
            uncarry(results, f"scale {n:,} files")
            _write(results, args.out, results_file)
    if args.only in (None, "real"):
        results.setdefault("real", {})
        for name in real:
            results["real"][name] = bench_real(
                name, tools, cache, work, args.reps, run=run, du=du, limit=args.real_limit
            )
            uncarry(results, f"real tree {name}")
            _write(results, args.out, results_file)
    if args.only is None and not args.skip_prune:
        results["prune"] = bench_prunes(data, work, tools, args.reps)
    print(_write(results, args.out, results_file))
    return 0


def bench_shared(data: Path, work: Path, tools: list[Tool], reps: int) -> dict[str, object]:
    """The shared datasets' section: ``reps`` repetitions, tools interleaved, ``cp -a`` once each."""
    rows: dict[str, list[dict[str, float | int]]] = {t.name: [] for t in tools}
    cps = []
    for rep in range(reps):
        cps.append(bench_cp(data, work))
        for t in tools if rep % 2 == 0 else list(reversed(tools)):
            print(f"rep {rep + 1}/{reps}: {t.name} ...", flush=True)
            rows[t.name].append(bench_tool(t, data, work))
    return {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "reps": reps,
        "versions": {t.name: t.version() for t in tools},
        "v1": _describe(data / "v1"),
        "v2": _describe(data / "v2"),
        "cp_a_v1": statistics.median(cps),
        "cp_a_v1_runs": cps,
        "medians": {name: {k: median(r, k) for k in r[0]} for name, r in rows.items() if r},
        "runs": rows,
    }


def _cache_dir(arg: Path | None) -> Path:
    cache = (arg or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snapvault-bench").resolve()
    if cache.is_relative_to(ROOT):
        raise SystemExit(f"--cache {cache} is inside the repository; the trees take gigabytes: choose a folder outside")
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _write(results: dict[str, Any], out: Path, results_file: Path) -> str:
    results_file.write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = render(results)
    out.write_text(text)
    return text


def _describe(path: Path) -> str:
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return f"{len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.0f} MiB"


if __name__ == "__main__":
    raise SystemExit(main())
