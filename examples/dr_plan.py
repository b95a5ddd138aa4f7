"""A disaster-recovery plan over three sites: a primary on a local disk, replicas on S3 and Azure.

    python examples/dr_plan.py [SOURCE_DIR] --s3-url s3://BUCKET/PREFIX --azure-url az://CONTAINER/PREFIX
                               [--s3-endpoint URL] [--workdir DIR]

It creates (or reopens) the primary in ``--workdir`` (default ``./dr-demo``), stores the plan in
it, creates the two replicas, backs up SOURCE_DIR (default: this project's ``src``) with the
policy ``docs``, replicates, drills each replica (a real restore of ten files, every byte
verified), and prints the status and the Markdown report. It exits 1 if an objective is not met.

The plan stores only *names* of environment variables, never a secret; this process resolves
them in its own environment:

- ``DR_S3_OPTIONS``, ``DR_AZURE_OPTIONS``: JSON storage options of each replica. When unset,
  they are built from ``--s3-endpoint`` with ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  and from ``AZURE_STORAGE_CONNECTION_STRING``.
- ``DR_PASSWORD``: the repositories' password (default ``demo``).

The buckets (container) must exist. Against the emulators the test suite starts (moto,
Azurite), ``tests/test_examples.py`` runs this script with their endpoints.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import snapvault as sv


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """This process's environment, with the variables the plan references filled in."""
    env = dict(os.environ)
    env.setdefault("DR_PASSWORD", "demo")
    if "DR_S3_OPTIONS" not in env:
        s3: dict[str, object] = {}
        if "AWS_ACCESS_KEY_ID" in env:
            s3 |= {"key": env["AWS_ACCESS_KEY_ID"], "secret": env.get("AWS_SECRET_ACCESS_KEY", "")}
        if args.s3_endpoint:
            s3["client_kwargs"] = {"endpoint_url": args.s3_endpoint}
        env["DR_S3_OPTIONS"] = json.dumps(s3)
    if "DR_AZURE_OPTIONS" not in env:
        azure = {}
        if "AZURE_STORAGE_CONNECTION_STRING" in env:
            azure["connection_string"] = env["AZURE_STORAGE_CONNECTION_STRING"]
        env["DR_AZURE_OPTIONS"] = json.dumps(azure)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default=str(Path(__file__).resolve().parent.parent / "src"))
    parser.add_argument("--workdir", default="dr-demo")
    parser.add_argument("--s3-url", required=True, help="s3://BUCKET/PREFIX of the S3 replica")
    parser.add_argument("--s3-endpoint", help="an S3-compatible endpoint (an emulator, MinIO)")
    parser.add_argument("--azure-url", required=True, help="az://CONTAINER/PREFIX of the Azure replica")
    args = parser.parse_args(argv)
    env = _environment(args)
    now = datetime.now(UTC)

    primary_url = str(Path(args.workdir).resolve() / "primary")
    try:
        primary = sv.Repository.open(primary_url, env["DR_PASSWORD"])
    except sv.RepositoryNotFound:
        primary = sv.Repository.init(primary_url, env["DR_PASSWORD"])

    plan = sv.DRPlan(
        name="example",
        primary=sv.Site(name="local", region="on-prem", url=primary_url, password_env="DR_PASSWORD"),
        replicas=[
            sv.Site(name="s3", region="aws", url=args.s3_url, options_env="DR_S3_OPTIONS", password_env="DR_PASSWORD"),
            sv.Site(
                name="azure",
                region="azure",
                url=args.azure_url,
                options_env="DR_AZURE_OPTIONS",
                password_env="DR_PASSWORD",
            ),
        ],
        rpo="6h",
        rto="1h",
        policies=["docs"],
        drill_settings=sv.DrillSettings(sample_files=10),
    )
    plan.save(primary, now=now)  # stored encrypted in the primary; replicate carries it along
    plan = plan.bind(env=env)  # where the referenced variables are resolved: here, only here
    created = plan.init_sites(now=now)
    print(f"plan {plan.name!r}: primary {primary_url}, replicas created: {created or 'none (they exist)'}")

    policy = sv.Policy(name="docs", sources=[str(Path(args.source).resolve())], exclude=["__pycache__/"])
    m = sv.Engine(plan.primary_repository(now)).run_policy(policy, now=now)
    print(f"backup {m.short_id}: {m.stats.total_files} files, {m.stats.total_bytes} bytes")

    result = plan.replicate(now=now)
    for r in result.sites:
        outcome = f"copied {r.copied}, skipped {r.skipped}, {r.bytes_uploaded} bytes" if r.ok else r.error
        print(f"replicate to {r.site}: {outcome}")

    for site in plan.replicas:
        d = plan.drill(site=site.name, now=now)
        if d.ok:
            estimate = "unknown" if d.rto_estimate_s is None else f"{d.rto_estimate_s:.1f} s"
            print(f"drill {site.name}: {d.files_restored} files restored and verified, full restore {estimate}")
        else:
            print(f"drill {site.name}: FAILED: {d.error}")

    status = plan.status(now=now)
    for s in status.sites:
        verdicts = ", ".join(f"{o.objective} {o.verdict}" for o in s.objectives)
        print(f"status {s.site}{' (primary)' if s.primary else ''}: {verdicts}")
    print()
    print(plan.report(now=now, format="markdown"))
    return 0 if status.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
