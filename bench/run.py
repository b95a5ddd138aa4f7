"""Side-by-side benchmark of snapvault, restic and borg on the shared datasets.

    python bench/run.py [--reps 3] [--data DIR] [--work DIR] [--skip-scale] [--scale-files N]
                        [--skip-s3] [--skip-prune] [--only prune]

Builds v1 and v2 with ../shared/bench/make_datasets.py (unless --data has them), then for each
repetition and each tool (interleaved, fresh repositories, encryption on, borg at zstd,3,
restic's default compression) measures: first backup of v1, unchanged re-backup of v1, backup
of v2 from the same source path, full restore of the latest snapshot into an empty directory,
check --read-data, repository size, and the peak RSS of every step (wait4 rusage of the child).
``cp -a v1`` is the reference for how fast this disk takes writes. Medians over repetitions;
ratios snapvault/peer are computed within this run. Writes docs/benchmarks.md and
bench/results.json.

Then forget and prune (bench/prune_bench.py): ten snapshots (v1, v2 and eight days of
bench/days.py) forgotten down to the latest two and pruned, timed per tool. ``--only prune``
runs just that and keeps every other section of bench/results.json as it was.
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
import time
from dataclasses import dataclass
from pathlib import Path

from prune_bench import VARIANTS, bench_prune, render_prune

ROOT = Path(__file__).resolve().parent.parent
MAKE_DATASETS = ROOT.parent / "shared" / "bench" / "make_datasets.py"
PASSWORD = "benchmark password"
STEPS = ["backup_v1", "rebackup_v1", "backup_v2", "restore", "check_read_data"]


@dataclass
class Measure:
    seconds: float
    max_rss_kib: int


_GNU_TIME = shutil.which("time") and Path("/usr/bin/time").exists()


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Measure:
    """Run ``cmd`` to completion; wall time and the child's peak RSS.

    Dirty pages are written back first, so no step pays for the writes of the one before. The
    peak RSS comes from GNU time (``/usr/bin/time -f %M``), which forks from its own small
    process: Linux carries the peak RSS of a process across exec, so measuring the child of
    this (large) Python process with wait4 would report this process's size as a floor.
    """
    os.sync()
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        argv = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd] if _GNU_TIME else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        proc.returncode = code
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {code}: {err.strip()[-500:]}")
        max_rss = int(rss.read().strip().splitlines()[-1]) if _GNU_TIME else usage.ru_maxrss
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

    def __init__(self, work: Path) -> None:
        super().__init__(work)
        self.binary = str(Path(sys.executable).parent / "snapvault")

    def available(self) -> bool:
        return Path(self.binary).exists()

    def env(self) -> dict[str, str]:
        return {"SNAPVAULT_PASSWORD": PASSWORD}

    def init(self, repo: Path) -> None:
        run([self.binary, "-r", str(repo), "init"], env=self.env())

    def backup(self, repo: Path, src: Path, n: int) -> list[str]:
        return [self.binary, "-r", str(repo), "backup", str(src), "--host", "bench"]

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
    out: dict[str, float | int] = {}
    env = tool.env()
    for step, n in (("backup_v1", 1), ("rebackup_v1", 2)):
        m = run(tool.backup(repo, src, n), env=env)
        out[step], out[f"{step}_rss"] = m.seconds, m.max_rss_kib
    sync_tree(data / "v2", src)
    m = run(tool.backup(repo, src, 3), env=env)
    out["backup_v2"], out["backup_v2_rss"] = m.seconds, m.max_rss_kib
    target.mkdir()
    cmd, cwd = tool.restore(repo, target, 3)
    m = run(cmd, env=env, cwd=cwd)
    out["restore"], out["restore_rss"] = m.seconds, m.max_rss_kib
    m = run(tool.check(repo), env=env)
    out["check_read_data"], out["check_read_data_rss"] = m.seconds, m.max_rss_kib
    out["repo_bytes"] = du(repo)
    shutil.rmtree(base)
    return out


def bench_cp(data: Path, work: Path) -> float:
    dst = work / "cp-target"
    m = run(["cp", "-a", str(data / "v1"), str(dst)])
    shutil.rmtree(dst)
    return m.seconds


def make_scale_tree(root: Path, files: int) -> None:
    """Small files of a few KiB: half in one wide directory, half in a deep chain."""
    import random

    rng = random.Random(200_000)
    wide = root / "wide"
    wide.mkdir(parents=True)
    half = files // 2
    for i in range(half):
        (wide / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randint(1024, 4096)))
    # The deep half: chains of 40 nested directories, 100 files in each directory.
    for i in range(files - half):
        d = i // 100
        chain, level = divmod(d, 40)
        deep = root / "deep" / f"c{chain:03d}" / "/".join(f"l{j:02d}" for j in range(level + 1))
        if i % 100 == 0:
            deep.mkdir(parents=True, exist_ok=True)
        (deep / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randint(1024, 4096)))


def bench_scale(tool: Tool, tree: Path, work: Path) -> dict[str, float | int]:
    base = Path(tempfile.mkdtemp(prefix=f"scale-{tool.name}-", dir=work))
    repo = base / "repo"
    tool.init(repo)
    env = tool.env()
    first = run(tool.backup(repo, tree, 1), env=env)
    again = run(tool.backup(repo, tree, 2), env=env)
    shutil.rmtree(base)
    return {
        "first": first.seconds,
        "first_rss": first.max_rss_kib,
        "rebackup": again.seconds,
        "rebackup_rss": again.max_rss_kib,
    }


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
    columns: list[tuple[str, Tool, str]] = []
    for t in tools:
        if t.name == "snapvault":
            columns += [(name, t, max_repack) for name, max_repack in VARIANTS.items()]
        else:
            columns.append((t.name, t, ""))
    rows: dict[str, list[dict[str, float | int]]] = {name: [] for name, _, _ in columns}
    for rep in range(reps):
        for name, t, max_repack in columns if rep % 2 == 0 else list(reversed(columns)):
            print(f"prune rep {rep + 1}/{reps}: {name} ...", flush=True)
            rows[name].append(
                bench_prune(t, data, work, run=run, sync_tree=sync_tree, du=du, max_repack=max_repack or "100%")
            )
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


def render(results: dict[str, object]) -> str:
    tools: dict[str, dict[str, float]] = results["medians"]  # type: ignore[assignment]
    peers = [t for t in ("restic", "borg") if t in tools]
    sv = tools.get("snapvault", {})
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `nox -s bench` on {results['machine']}, {results['date']}.",
        f"Tools: {', '.join(results['versions'][t] for t in tools)}.",  # type: ignore[index]
        f"Datasets: `make_datasets.py` v1 ({results['v1']}) and v2 ({results['v2']}).",
        f"Medians of {results['reps']} repetitions, tools interleaved, fresh repositories each time, encryption on;",
        "borg at `zstd,3`, restic at its default compression, snapvault at its default (zstd 3).",
        "Times in seconds (whole command, start-up included), RSS in MiB, sizes in MiB.",
        f"`cp -a v1` (the disk's pace for the same tree): {results['cp_a_v1']:.2f} s.",
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
        lines += ["", f"snapvault restore / `cp -a`: {ratio(sv['restore'], float(results['cp_a_v1']))}"]  # type: ignore[arg-type]
    scale: dict[str, dict[str, float]] = results.get("scale", {})  # type: ignore[assignment]
    if scale:
        n = results["scale_files"]
        lines += [
            "",
            f"## Scale: {n} small files (1-4 KiB; a wide directory and a deep one)",
            "",
            "| measure | " + " | ".join(scale) + " |",
            "|" + "---|" * (1 + len(scale)),
        ]
        for key, label in (("first", "first backup (s)"), ("rebackup", "unchanged re-backup (s)")):
            lines.append(f"| {label} | " + " | ".join(f"{scale[t][key]:.2f}" for t in scale) + " |")
        for key, label in (("first_rss", "first backup peak RSS (MiB)"), ("rebackup_rss", "re-backup peak RSS (MiB)")):
            lines.append(f"| {label} | " + " | ".join(f"{scale[t][key] / 1024:.0f}" for t in scale) + " |")
        lines.append(
            "| re-backup peak RSS per file (bytes) | "
            + " | ".join(f"{scale[t]['rebackup_rss'] * 1024 / float(n):.0f}" for t in scale)  # type: ignore[arg-type]
            + " |"
        )
        # The same, above what the tool needs for the 7,736-file v1 re-backup: the cost of
        # each further file, without the interpreter or binary that any tree pays for.
        marginal = {
            t: (scale[t]["rebackup_rss"] - tools[t]["rebackup_v1_rss"]) * 1024 / float(n)  # type: ignore[arg-type]
            for t in scale
            if t in tools
        }
        if len(marginal) == len(scale):
            lines.append(
                "| re-backup peak RSS per file above the v1 re-backup (bytes) | "
                + " | ".join(f"{marginal[t]:.0f}" for t in scale)
                + " |"
            )
    s3: dict[str, dict[str, float]] = results.get("s3", {})  # type: ignore[assignment]
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
        lines += ["", f"Sections carried over from an earlier run of this harness: {', '.join(carried)}."]  # type: ignore[arg-type]
    prune: dict[str, object] = results.get("prune", {})  # type: ignore[assignment]
    if prune:
        lines += render_prune(prune)
    notes = ROOT / "bench" / "notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", type=Path, help="folder holding v1 and v2 (built if missing)")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-s3", action="store_true", help="skip the S3 (moto) throughput run")
    ap.add_argument("--skip-prune", action="store_true", help="skip the forget-and-prune run")
    ap.add_argument(
        "--only", choices=["prune"], help="run only this section; the others stay as bench/results.json has them"
    )
    ap.add_argument("--scale-files", type=int, default=200_000)
    ap.add_argument("--tools", default="snapvault,restic,borg")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from bench/results.json")
    args = ap.parse_args()
    if args.render:
        print(_write(json.loads((ROOT / "bench" / "results.json").read_text()), args.out))
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="snapvault-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data or work / "data"
    if not (data / "v1").exists():
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
    previous_file = ROOT / "bench" / "results.json"
    previous = json.loads(previous_file.read_text()) if previous_file.exists() else {}
    if args.only == "prune":
        if not previous:
            print("--only prune needs bench/results.json from a full run", file=sys.stderr)
            return 1
        previous["prune"] = bench_prunes(data, work, tools, args.reps)
        print(_write(previous, args.out))
        return 0
    rows: dict[str, list[dict[str, float | int]]] = {t.name: [] for t in tools}
    cps = []
    for rep in range(args.reps):
        cps.append(bench_cp(data, work))
        for t in tools if rep % 2 == 0 else list(reversed(tools)):
            print(f"rep {rep + 1}/{args.reps}: {t.name} ...", flush=True)
            rows[t.name].append(bench_tool(t, data, work))
    medians = {name: {k: median(r, k) for k in r[0]} for name, r in rows.items() if r}
    results: dict[str, object] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "reps": args.reps,
        "versions": {t.name: t.version() for t in tools},
        "v1": _describe(data / "v1"),
        "v2": _describe(data / "v2"),
        "cp_a_v1": statistics.median(cps),
        "medians": medians,
        "runs": rows,
    }
    for key, flag in (("s3", args.skip_s3), ("scale", args.skip_scale), ("prune", args.skip_prune)):
        # A section this run skips is carried over from the last run, marked as such.
        if flag and key in previous:
            results[key] = previous[key]
            if key == "scale":
                results["scale_files"] = previous.get("scale_files")
            date = previous[key].get("date") if key == "prune" else None
            results.setdefault("carried", []).append(f"{key} ({date or previous.get('date', '?')})")
    _write(results, args.out)
    if not args.skip_s3:
        print("S3 throughput against moto ...", flush=True)
        results["s3"] = bench_s3(data, work, tools)
        _write(results, args.out)
    if not args.skip_scale:
        tree = work / "scale"
        if not tree.exists():
            print(f"building {args.scale_files} small files ...", flush=True)
            make_scale_tree(tree, args.scale_files)
        results["scale_files"] = args.scale_files
        results["scale"] = {t.name: bench_scale(t, tree, work) for t in tools}
        _write(results, args.out)
    if not args.skip_prune:
        results["prune"] = bench_prunes(data, work, tools, args.reps)
    print(_write(results, args.out))
    return 0


def _write(results: dict[str, object], out: Path) -> str:
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = render(results)
    out.write_text(text)
    return text


def _describe(path: Path) -> str:
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return f"{len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.0f} MiB"


if __name__ == "__main__":
    raise SystemExit(main())
