"""Scale-out on Dask: one backup by 1 and 2 worker processes, and the driver's memory per file.

    python bench/dask_bench.py [--files N] [--file-kib K] [--copies C] [--memory-files M]
                               [--synthetic 1000000] [--reps 3] [--task-threads 2]
                               [--skip-memory] [--work DIR]

1. Throughput. A generated source of ``--files`` random files of ``--file-kib`` KiB, plus
   ``--copies`` directories holding identical copies of one set of files (content that several
   tasks hold at once), is backed up into a fresh local-folder repository (every repository
   shares the first one's content parameters, so their tree IDs compare) by: one process
   (``run_backup``), then ``distributed_backup`` on a LocalCluster of 1 and of 2 worker
   processes (one thread each). Reported: wall time (cluster start-up apart), MB/s, bytes
   stored, packs, the space duplicates stored at once cost against one process, and whether
   the source's tree ID equals the single-process snapshot's. Workers run with
   ``MALLOC_MMAP_THRESHOLD_`` raised (docs/howto/dask.md, "Worker memory settings"); one more
   row runs 2 workers with Dask's defaults alone, to show what that setting is worth.
2. Driver memory per file, measured. ``--memory-files`` tiny files backed up by one process
   and by a cluster whose scheduler runs in another process (as a real cluster's does), with
   tracemalloc on the driver: the peak difference per file.
3. Driver memory per file at scale, synthetic. The results the driver holds between the
   workers' end and building the trees (one content ID per file, as small objects have), for
   ``--synthetic`` files, measured with tracemalloc: bytes per file.

Prints a markdown table of each.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import snapvault as sv
from snapvault.archiver.session import BackupOptions, run_backup

KDF = sv.KdfParams(memory_kib=64, iterations=1, lanes=1)
PASSWORD = "benchmark password"


#: What the workers are started with: glibc's mmap threshold raised, since Dask's own
#: MALLOC_TRIM_THRESHOLD_ alone freezes it at 128 KiB and every chunk buffer becomes an mmap.
TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": 32 << 20}


def make_source(root: Path, files: int, file_kib: int, copies: int) -> tuple[Path, int]:
    """The generated source (``root/data/src``: repositories made beside ``data`` leave the
    directories above the source untouched) and its size in bytes."""
    rnd = random.Random(20261205)
    src = root / "data" / "src"
    total = 0
    for i in range(files):
        d = src / f"d{i % 16:02d}"
        d.mkdir(parents=True, exist_ok=True)
        data = rnd.randbytes(file_kib << 10)
        (d / f"f{i:05d}.bin").write_bytes(data)
        total += len(data)
    shared = [rnd.randbytes(512 << 10) for _ in range(16)]
    for c in range(copies):
        d = src / f"copy{c}"
        d.mkdir(parents=True)
        for j, data in enumerate(shared):
            (d / f"s{j:02d}.bin").write_bytes(data)
            total += len(data)
    return src, total


def _new_repo(path: Path, params_from: sv.Repository | None) -> sv.Repository:
    return sv.Repository.init(str(path), PASSWORD, kdf=KDF, copy_params_from=params_from)


def _source_tree(repo: sv.Repository, m: sv.Manifest, src: Path) -> str:
    """The tree ID of the source directory in snapshot ``m``."""
    tree = m.tree
    for name in src.parts[1:]:
        tree = next(n.subtree for n in repo.read_tree(tree) if n.name == name and n.subtree is not None)
    return tree


def _timed(fn: Callable[[], sv.Manifest]) -> tuple[float, sv.Manifest]:
    os.sync()
    t = time.perf_counter()
    m = fn()
    return time.perf_counter() - t, m


def _median_run(reps: int, fn: Callable[[int], sv.Manifest]) -> tuple[float, sv.Manifest]:
    """The median time of ``reps`` runs of ``fn(rep)`` (each into a fresh repository), and the
    last run's manifest."""
    times = []
    for rep in range(reps):
        seconds, m = _timed(lambda rep=rep: fn(rep))
        times.append(seconds)
    return statistics.median(times), m


def throughput(work: Path, src: Path, total: int, task_bytes: int, reps: int, threads: int) -> list[dict[str, Any]]:
    import dask

    from distributed import Client, LocalCluster
    from snapvault.distributed import distributed_backup

    repos = work / "repos"
    base = _new_repo(repos / "params", None)

    def one_process(rep: int) -> sv.Manifest:
        return run_backup(_new_repo(repos / f"single-{rep}", base), BackupOptions(paths=[str(src)])).manifest

    seconds, single = _median_run(reps, one_process)
    want = _source_tree(sv.Repository.open(str(repos / f"single-{reps - 1}"), PASSWORD), single, src)
    rows = [_row("1 process", seconds, 0.0, single, single, total, True)]
    for n, tuned in ((1, True), (2, True), (2, False)):
        name = f"dask{n}{'-tuned' if tuned else ''}"
        started = time.perf_counter()
        env = TUNED_ENV if tuned else {}
        with (
            dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}),
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
            Client(cluster) as client,
        ):
            up = time.perf_counter() - started

            def run(rep: int, name: str = name, client: Any = client) -> sv.Manifest:
                repo = _new_repo(repos / f"{name}-{rep}", base)
                return distributed_backup(repo, [str(src)], client, task_bytes=task_bytes, workers=threads)

            seconds, m = _median_run(reps, run)
        same = _source_tree(sv.Repository.open(str(repos / f"{name}-{reps - 1}"), PASSWORD), m, src) == want
        label = f"Dask, {n} worker{'s' if n > 1 else ''}{'' if tuned else ', default worker env'}"
        rows.append(_row(label, seconds, up, m, single, total, same))
    return rows


def _row(
    name: str, seconds: float, startup: float, m: sv.Manifest, single: sv.Manifest, total: int, same: bool
) -> dict[str, Any]:
    return {
        "run": name,
        "seconds": seconds,
        "startup": startup,
        "mb_s": total / seconds / 1e6,
        "stored": m.stats.bytes_stored,
        "packs": m.stats.packs_written,
        "dup": m.stats.bytes_stored - single.stats.bytes_stored,
        "same_tree": same,
    }


def driver_memory(work: Path, files: int) -> dict[str, float]:
    """Peak traced memory on the driver, one process against the cluster's driver, for ``files``
    and ``4 * files`` files: the slope is the memory per file (a constant, such as the buffer
    an index file is read into, cancels out)."""
    from distributed.deploy.subprocess import SubprocessCluster

    from distributed import Client
    from snapvault.distributed import distributed_backup

    out: dict[str, float] = {}
    with (
        SubprocessCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        for n in (files, 4 * files):
            src = work / "data" / f"many-{n}"
            for i in range(n):
                d = src / f"d{i // 1000:04d}"
                if i % 1000 == 0:
                    d.mkdir(parents=True)
                (d / f"{i:07d}").write_bytes(i.to_bytes(4, "little"))
            for name, run in (
                ("single", lambda repo, src=src: run_backup(repo, BackupOptions(paths=[str(src)])).manifest),
                ("dask", lambda repo, src=src: distributed_backup(repo, [str(src)], client)),
            ):
                repo = _new_repo(work / "repos" / f"mem-{name}-{n}", None)
                gc.collect()
                tracemalloc.start()
                run(repo)
                out[f"{name}-{n}"] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
    for name in ("single", "dask"):
        out[f"{name}-per-file"] = (out[f"{name}-{4 * files}"] - out[f"{name}-{files}"]) / (3 * files)
    return out


def synthetic_results(files: int) -> float:
    """Bytes per file of the workers' results the driver holds, for ``files`` files."""
    from snapvault.distributed.items import FileResult

    rnd = random.Random(1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    results: dict[str, FileResult] = {}
    t0 = 1_796_000_000_000_000_000
    for i in range(files):
        path = f"/data/project/part-{i // 1000:04d}/object-{i:08d}.parquet"
        ident = (rnd.randrange(1 << 20), t0 + i, t0 + i, 10_000_000 + i, 65024)
        results[path] = FileResult(path, ident, (rnd.randbytes(32).hex(),), ident[0])
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del results
    return used / files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--file-kib", type=int, default=256)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--task-mib", type=int, default=16)
    ap.add_argument("--memory-files", type=int, default=20_000)
    ap.add_argument("--synthetic", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3, help="runs of each variant (median time)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--task-threads", type=int, default=2, help="encode threads of each task (workers=)")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--dask", action="store_true", help="accepted for `nox -s bench -- --dask`")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sv-dask-bench-"))
    try:
        src, total = make_source(work, args.files, args.file_kib, args.copies)
        rows = throughput(work, src, total, args.task_mib << 20, args.reps, args.task_threads)
        count = args.files + 16 * args.copies
        threads = args.task_threads
        print(f"\n### Throughput: {total / 1e6:.0f} MB in {count} files, {os.cpu_count()} CPUs, {threads} per task\n")
        print("| run | seconds | cluster start-up s | MB/s | bytes stored | packs | duplicates cost | same tree |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print(
                f"| {r['run']} | {r['seconds']:.2f} | {r['startup']:.1f} | {r['mb_s']:.0f} | {r['stored']:,} | "
                f"{r['packs']} | {r['dup']:,} B ({100 * r['dup'] / rows[0]['stored']:.2f}%) | {r['same_tree']} |"
            )
        if args.skip_memory:
            return 0
        mem = driver_memory(work, args.memory_files)
        per = synthetic_results(args.synthetic)
        n = args.memory_files
        print(f"\n### Driver memory (tracemalloc peaks at {n:,} and {4 * n:,} files; synthetic {args.synthetic:,})\n")
        print("| measure | value |")
        print("|---|---:|")
        for name, label in (("single", "one process"), ("dask", "Dask driver")):
            print(
                f"| {label}, peak at {n:,} / {4 * n:,} files | {mem[f'{name}-{n}'] / 1e6:.1f} / "
                f"{mem[f'{name}-{4 * n}'] / 1e6:.1f} MB |"
            )
            print(f"| {label}, per file (slope) | {mem[f'{name}-per-file']:.0f} B |")
        print(f"| workers' results held, per file (synthetic, {args.synthetic:,} files) | {per:.0f} B |")
        print(f"| projected at {args.synthetic:,} files | {per * args.synthetic / 1e6:.0f} MB |")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
