"""Coverage-guided fuzzing of every decoder with atheris (libFuzzer), under the suite's oracle.

Usage::

    python tests/fuzz/atheris_driver.py [-runs=N | N] [DECODER ...]

Each decoder of ``targets.py`` (all of them unless named) is fuzzed in a child process for N
runs (default 10000), from a corpus of its real objects: each corpus file is two selector
bytes (which layer, which seed) and the bytes of that layer, which the child seals again with
the seed's real key before decoding, exactly as the hypothesis suite does. The oracle is the
same (:func:`oracle.judge`): only typed errors escape, tracemalloc's peak stays under the
decoder's bound; libFuzzer's ``-rss_limit_mb`` bounds the whole process as well, and each
child's peak RSS (``getrusage``) is printed with its tally of outcomes.

Prints one line per decoder and exits 1 if any decoder crashed, with the input that did it
(libFuzzer's crash file) named. Without atheris it prints ``atheris not available`` and exits 0.
Not collected by pytest (the name does not start with ``test_``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The whole process may use this much; the per-decoder bounds (tracemalloc) are far smaller.
RSS_LIMIT_MB = 2048
# Tokens libFuzzer splices into inputs: what breaks JSON readers, and the binary formats' magics.
_TOKENS = [
    b"Infinity",
    b"-Infinity",
    b"NaN",
    b"1e400",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"[[[[[[[[[[[[[[[[",
    b'"\\ud800"',
    b'"\\u0000"',
    b'".."',
    b'"/"',
    b"4294967295",
    b"18446744073709551616",
    b"-1",
    b"SVP1",
    b"SVI1",
    b"\x28\xb5\x2f\xfd",  # the zstd frame magic
    b"\xff\xff\xff\xff",
]


def _dict_line(token: bytes) -> str:
    return '"' + "".join(f"\\x{b:02x}" for b in token) + '"'


def _write_inputs(name: str, work: Path) -> tuple[Path, Path]:
    """The decoder's seed corpus and its libFuzzer dictionary (JSON keys of its seeds added)."""
    from tests.fuzz.targets import shared

    target = shared()[name]
    corpus = work / "corpus"
    corpus.mkdir()
    tokens = set(_TOKENS)
    for s, seed in enumerate(target.seeds):
        for i, layer in enumerate(target.layers):
            if layer.name not in seed.layers:
                continue
            data = seed.layers[layer.name]
            (corpus / f"seed-{s}-{layer.name}").write_bytes(bytes([i, s]) + data)
            if layer.json:
                tokens |= {json.dumps(k).encode() for k in _keys(json.loads(data))}
    dictionary = work / "tokens.dict"
    dictionary.write_text("".join(_dict_line(t) + "\n" for t in sorted(tokens)))
    return corpus, dictionary


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def child(name: str, argv: list[str]) -> None:
    """Fuzz one decoder in this process (libFuzzer exits it when the runs are done)."""
    import resource

    import atheris

    runs = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("-runs=")), 10000)
    with atheris.instrument_imports(include=["snapvault"]):
        from tests.fuzz.oracle import judge
        from tests.fuzz.targets import shared
    target = shared()[name]
    outcomes: Counter[str] = Counter()
    count = 0

    def one(data: bytes) -> None:
        nonlocal count
        count += 1
        if len(data) >= 2:
            seed = target.seeds[data[1] % len(target.seeds)]
            layers = [x for x in target.layers if x.name in seed.layers]
            layer = layers[data[0] % len(layers)]
            stored = layer.seal(seed.meta, data[2:])
            # A key file that asks for an Argon2id cost the format allows but a fuzzer cannot pay.
            outcomes[judge(target, seed.meta, stored) if target.admit(stored) else "skipped: KDF cost"] += 1
        if count == runs:
            # libFuzzer leaves by exit(): no atexit handler runs, so the tally goes out now.
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print("OUTCOMES " + json.dumps({"peak_rss_mib": peak, **outcomes}), flush=True)

    atheris.Setup([sys.argv[0], *argv], one)
    atheris.Fuzz()


def main(argv: list[str]) -> int:
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris not available")
        return 0
    from tests.fuzz.targets import TARGET_NAMES, close_shared

    # The run count as libFuzzer spells it (-runs=N) or bare (N, as noxfile.py passes it).
    counts = [a.removeprefix("-runs=") for a in argv if a.startswith("-runs=") or a.isdigit()]
    runs = f"-runs={counts[-1] if counts else 10000}"
    names = [a for a in argv if not a.startswith("-") and not a.isdigit()] or list(TARGET_NAMES)
    unknown = sorted(set(names) - set(TARGET_NAMES))
    if unknown:
        print(f"unknown decoders {unknown}; known: {', '.join(TARGET_NAMES)}", file=sys.stderr)
        return 2
    failed = []
    # Kept when a decoder fails, for its crash inputs; removed otherwise.
    tmp = Path(tempfile.mkdtemp(prefix="snapvault-atheris-"))
    for name in names:
        work = tmp / name
        work.mkdir()
        corpus, dictionary = _write_inputs(name, work)
        largest = max(p.stat().st_size for p in corpus.iterdir())
        args = [
            sys.executable,
            "-u",  # unbuffered: libFuzzer leaves by _exit(), which would drop the oracle's report
            __file__,
            "--child",
            name,
            runs,
            f"-dict={dictionary}",
            # Room to grow the largest seed (nesting, insertions), not only to shrink it.
            f"-max_len={max(2 * largest, 8192)}",
            f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-artifact_prefix={work}/",
            "-timeout=120",
            str(corpus),
        ]
        proc = subprocess.run(args, capture_output=True, cwd=ROOT, check=False)
        tally = next((ln[9:] for ln in proc.stdout.decode().splitlines() if ln.startswith("OUTCOMES ")), "{}")
        crashes = sorted(str(p) for p in work.iterdir() if p.name.startswith(("crash-", "oom-", "timeout-")))
        ok = proc.returncode == 0 and not crashes
        print(f"{name}: {'ok' if ok else 'FAILED'} {runs[1:]}, outcomes {tally}", flush=True)
        if not ok:
            failed.append(name)
            out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
            # The oracle's message and traceback, else libFuzzer's own report (RSS limit, timeout).
            start = out.find("=== Uncaught Python exception: ===")
            print(out[start : start + 6000] if start >= 0 else out[-3000:], file=sys.stderr)
            for path in crashes:
                print(f"  input that did it: {path}", file=sys.stderr)
    close_shared()
    if failed:
        print(f"decoders that failed: {', '.join(failed)} (inputs under {tmp})")
        return 1
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main(sys.argv[1:]))
