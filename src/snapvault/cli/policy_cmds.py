"""CLI commands for policies: ``policy``, ``run``, ``due``, ``forget``, ``stats``."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from snapvault.cli import output
from snapvault.cli.common import (
    Context,
    allow_file,
    allowed_hooks,
    backup_outcome,
    dr_write_target,
    exclude_file_patterns,
    fail,
    fraction,
    manifest_json,
    prune_options,
    report,
    report_backup,
)
from snapvault.cli.exits import Outcome, worst

if TYPE_CHECKING:
    from snapvault.handle import Repository
    from snapvault.policy.model import Policy
    from snapvault.policy.records import BrokenPolicy
    from snapvault.policy.retention import Decision
    from snapvault.repository.manifest import Manifest


def _now() -> datetime:
    return datetime.now(UTC)


def _report_broken(broken: list[BrokenPolicy]) -> Outcome:
    """One stderr line per stored policy that cannot be read; the outcome that deserves.

    The commands that read every policy still do their work for the others, but exit 1: a
    scheduled ``due --run`` or ``forget`` that silently skipped a policy would go unnoticed.
    """
    for b in broken:
        reason = " ".join(str(b.error).split())
        if b.name is not None:
            output.error(f"{reason}; 'snapvault policy remove {b.name}' removes it", subject=f"policy {b.name}")
        else:
            output.error(reason, subject=f"policy record {b.key}")
    return Outcome.POLICIES_UNREADABLE if broken else Outcome.DONE


@click.group()
def policy() -> None:
    """Manage the policies stored in the repository."""


def _retention(opts: dict[str, Any], timezone: str) -> Any:
    from snapvault import retention as r

    parts: list[r.Strategy] = []
    if opts["keep_last"] is not None:
        parts.append(r.KeepLast(opts["keep_last"]))
    if opts["keep_within"] is not None:
        parts.append(r.KeepWithin(opts["keep_within"]))
    gfs = {k: opts[f"keep_{k}"] or 0 for k in ("hourly", "daily", "weekly", "monthly", "yearly")}
    if any(gfs.values()):
        parts.append(r.GFS(timezone=timezone, **gfs))
    if opts["keep_tag"]:
        parts.append(r.KeepTags(opts["keep_tag"]))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else r.Union(parts)


@policy.command(name="add")
@click.argument("name", required=False)
@click.option("--file", "from_file", type=click.Path(dir_okay=False), help="Read the policy from a JSON file.")
@click.option("--source", "-s", multiple=True, help="Path to back up; repeatable.")
@click.option("--exclude", "-e", multiple=True, help="gitignore-style pattern; repeatable.")
@click.option(
    "--exclude-file",
    multiple=True,
    metavar="FILE",
    help="Store the patterns of FILE (one a line) as --exclude; repeatable.",
)
@click.option("--exclude-if-present", multiple=True, metavar="NAME[:HEADER]", help="See backup; repeatable.")
@click.option("--exclude-caches", is_flag=True, help="Leave out the contents of tagged cache directories.")
@click.option("--exclude-larger-than", metavar="SIZE", help="Leave out files larger than SIZE (K, M, G, T).")
@click.option("--one-file-system", "-x", is_flag=True, help="Do not cross file systems below a source.")
@click.option(
    "--type",
    "backup_type",
    default="incremental",
    show_default=True,
    type=click.Choice(["full", "incremental", "differential", "snapshot"]),
)
@click.option("--schedule", help="Cron expression, e.g. '0 2 * * *'.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA timezone of the schedule and GFS buckets.")
@click.option("--keep-last", type=int)
@click.option("--keep-within", help="Duration such as 7d, 36h, 2w.")
@click.option("--keep-hourly", type=int)
@click.option("--keep-daily", type=int)
@click.option("--keep-weekly", type=int)
@click.option("--keep-monthly", type=int)
@click.option("--keep-yearly", type=int)
@click.option("--keep-tag", multiple=True)
@click.option("--compression", help="'none', 'zstd' or 'zstd:LEVEL'.")
@click.option("--verify", default="none", show_default=True, help="'none', 'sample:N%' or 'all'.")
@click.option("--max-concurrency", type=int)
@click.option("--tag", multiple=True)
@click.option("--pre-hook", multiple=True, help="Shell command run before a backup; repeatable.")
@click.option("--post-hook", multiple=True, help="Shell command run after a backup; repeatable.")
@click.option("--replace", is_flag=True, help="Replace a stored policy of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the saved policy as JSON.")
@click.pass_obj
def policy_add(
    obj: Context, /, name: str | None, from_file: str | None, replace: bool, as_json: bool, **opts: Any
) -> None:
    """Store a policy (from options, or from a JSON file with --file)."""
    from snapvault.policy.model import Policy

    if from_file:
        try:
            text = Path(from_file).read_text(encoding="utf-8")
        except OSError as e:
            fail(f"cannot read {from_file}: {e.strerror}")
        pol = Policy.from_json(text)
        if name and name != pol.name:
            fail(f"the file defines policy {pol.name!r}, not {name!r}")
    else:
        if not name:
            fail("give a policy NAME (or --file)")
        if not opts["source"]:
            fail("give at least one --source")
        pol = Policy(
            name=name,
            sources=[os.path.abspath(s) for s in opts["source"]],
            exclude=[*opts["exclude"], *exclude_file_patterns(opts["exclude_file"])],
            exclude_if_present=list(opts["exclude_if_present"]),
            exclude_caches=opts["exclude_caches"],
            exclude_larger_than=opts["exclude_larger_than"],
            one_file_system=opts["one_file_system"],
            backup_type=opts["backup_type"],
            schedule=opts["schedule"],
            timezone=opts["timezone"],
            retention=_retention(opts, opts["timezone"]),
            compression=opts["compression"],
            verify=opts["verify"],
            max_concurrency=opts["max_concurrency"],
            tags=list(opts["tag"]),
            pre_hooks=list(opts["pre_hook"]),
            post_hooks=list(opts["post_hook"]),
        )
    from snapvault.policy.records import read_policies

    repo = obj.open()
    stored = read_policies(repo)
    exists = pol.name in stored.policies or any(b.name == pol.name for b in stored.broken)
    if exists and not replace:
        fail(f"policy {pol.name!r} exists; use --replace to change it")
    repo.save_policy(pol, now=_now())
    if as_json:
        output.document({"saved": pol.name, "replaced": exists, "policy": json.loads(pol.to_json())})
    else:
        output.info(f"saved policy {pol.name}")


@policy.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def policy_list(obj: Context, as_json: bool) -> Outcome:
    """List stored policies (one that cannot be read here is named on stderr; exit code 1)."""
    from snapvault.policy.records import read_policies

    policies, broken = read_policies(obj.open())
    if as_json:
        output.document([json.loads(p.to_json()) for _, p in sorted(policies.items())])
    else:
        for name, p in sorted(policies.items()):
            click.echo(f"{name:<20} {p.backup_type:<12} {p.schedule or '-':<16} {' '.join(p.sources)}")
    return _report_broken(broken)


@policy.command(name="show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The same JSON document (show always prints one).")
@click.pass_obj
def policy_show(obj: Context, name: str, as_json: bool) -> None:
    """Print a stored policy as JSON ('policy allow-hooks NAME' allows its shell hooks here)."""
    output.document(json.loads(obj.open().load_policy(name).to_json()))


@policy.command(name="allow-hooks")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the hooks and their hashes as JSON.")
@click.pass_obj
def policy_allow_hooks(obj: Context, name: str, as_json: bool) -> None:
    """Allow the shell hooks of the stored policy NAME on this machine.

    Appends each command's SHA-256 to the allowed hooks file (``SNAPVAULT_HOOKS_ALLOW``, else
    ``~/.config/snapvault/hooks.allow``), which ``run`` and ``due --run`` read: a stored
    command runs only where its exact text was allowed. Review the commands first.
    """
    from snapvault.policy.hooks import hook_hash, shell_hooks

    pol = obj.open().load_policy(name)
    path = allow_file()
    allowed = allowed_hooks(path)
    commands = shell_hooks(pol.pre_hooks, pol.post_hooks)
    lines = []
    rows = []
    for stage, command in commands:
        digest = hook_hash(command)
        rows.append({"stage": stage, "command": command, "sha256": digest, "already_allowed": digest in allowed})
        if digest in allowed:
            output.info(f"already allowed: {stage}-hook {command!r} (sha256 {digest})")
            continue
        allowed |= {digest}
        lines.append(f"# policy {name!r} {stage}-hook: {command!r}\n{digest}\n")
        output.info(f"allowed: {stage}-hook {command!r} (sha256 {digest})")
    if not commands:
        output.info(f"policy {name} has no shell hooks")
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
        output.info(f"written to {path}")
    if as_json:
        output.document({"policy": name, "hooks": rows, "allow_file": str(path)})


@policy.command(name="remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.pass_obj
def policy_remove(obj: Context, name: str, as_json: bool) -> None:
    """Remove a stored policy (its snapshots stay), also one that cannot be read here."""
    obj.open().remove_policy(name, now=_now())
    if as_json:
        output.document({"removed": name})
    else:
        output.info(f"removed policy {name}")


def _run_one(repo: Repository, pol: Policy) -> Manifest:
    from snapvault import Engine
    from snapvault.cli.progress import bar
    from snapvault.errors import HookError
    from snapvault.policy.hooks import hook_hash, shell_hooks

    path = allow_file()
    allowed = allowed_hooks(path)
    for stage, command in shell_hooks(pol.pre_hooks, pol.post_hooks):
        digest = hook_hash(command)
        if digest not in allowed:
            # Checked before anything runs: the stored command is repository content.
            raise HookError(
                f"policy {pol.name!r}: {stage}-hook {command!r} is not allowed on this machine "
                f"(sha256 {digest}); review it ('snapvault policy show {pol.name}'), then allow it "
                f"with 'snapvault policy allow-hooks {pol.name}' or add the hash to {path}"
            )
    with bar(f"policy {pol.name}") as b:
        return Engine(repo, allowed_hooks=allowed).run_policy(
            pol, callback=b, on_file=None if b is None else lambda path, _size, _unchanged: b.file_done(path)
        )


@click.command(name="run")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def run_cmd(obj: Context, name: str, as_json: bool) -> Outcome:
    """Run the stored policy NAME once, now."""
    repo = obj.open()
    pol = repo.load_policy(name)
    target = dr_write_target(obj, repo, pol.name, list(pol.tags))
    return report_backup(_run_one(target, pol), as_json, prefix=f"policy {pol.name}: ")


def _lock_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "snapvault" / "locks"


@contextlib.contextmanager
def _policy_lock(repo_id: str, name: str) -> Iterator[bool]:
    """Hold a per-machine lock so overlapping cron invocations never run one policy twice."""
    d = _lock_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"{repo_id[:16]}-{name}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _policy_job(obj: Context, repo: Repository, pol: Policy, as_json: bool, row: dict[str, Any]) -> Outcome:
    manifest = _run_one(dr_write_target(obj, repo, pol.name, list(pol.tags)), pol)
    if as_json:
        row["snapshot"] = manifest_json(manifest)  # one document for the whole run: in its row
    return backup_outcome(manifest) if as_json else report_backup(manifest, False, prefix=f"policy {pol.name}: ")


def _plan_jobs(obj: Context, repo: Repository, now: datetime) -> list[tuple[Any, ...]]:
    """The stored DR plans with a schedule, each last run at its newest replication record."""
    if not repo.list_keys("dr-plans"):  # layout.DR_PLANS: with no plan, no DR module is imported
        return []
    from snapvault.cli.progress import bar
    from snapvault.dr import model, records
    from snapvault.dr.plan import DRPlan

    def job(plan: DRPlan, as_json: bool, row: dict[str, Any]) -> Outcome:
        allowed = allowed_hooks(allow_file())  # stored hooks run only where allowed, as above
        bound = plan.bind(env=os.environ, allowed_hooks=allowed, max_kdf_memory_kib=obj.max_kdf_memory_kib)
        with bar(f"replicate {plan.name}") as b:
            done = bound.replicate(now=now, callback=b)
        row["replication"] = done.to_json()
        for bad in [r for r in done.sites if not r.ok]:
            output.error(f"not replicated: {bad.error_type}: {bad.error}", subject=f"plan {plan.name} site {bad.site}")
        output.info(f"plan {plan.name}: {sum(r.copied for r in done.sites)} snapshot(s) copied from {done.primary}")
        return Outcome.DONE if done.ok else Outcome.POLICY_FAILED

    jobs: list[tuple[Any, ...]] = []
    for name, plan in DRPlan.stored(repo).items():
        if plan.schedule is not None:
            last = [r.time for r in records.load_records(repo, model.ReplicationRecord, name)][-1:]
            jobs.append(("plan", name, plan, last[0] if last else None, functools.partial(job, plan)))
    return jobs


@click.command()
@click.option("--run", "run_due", is_flag=True, help="Run every due policy, and replicate every due DR plan.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def due(obj: Context, run_due: bool, as_json: bool) -> Outcome:
    """Show which scheduled policies and DR plans are due (and with --run, run or replicate them).

    Due: a scheduled time has passed since a policy's last run started, or a plan's last
    replication; one that never ran is due. A crontab line: ``* * * * * snapvault -r URL due --run``.
    """
    from snapvault.errors import SnapvaultError
    from snapvault.policy import cron
    from snapvault.policy.records import load_runs, read_policies

    repo = obj.open()
    now = _now()
    last: dict[str, datetime] = {r.policy: r.started for r in load_runs(repo)}
    policies, broken = read_policies(repo)
    outcomes = [_report_broken(broken)]
    scheduled = [(n, p) for n, p in sorted(policies.items()) if p.schedule is not None]
    jobs = [("policy", n, p, last.get(n), functools.partial(_policy_job, obj, repo, p)) for n, p in scheduled]
    try:
        jobs += _plan_jobs(obj, repo, now)
    except SnapvaultError as e:  # a damaged plan record: the policies still run
        output.error(str(e), subject="dr plans")
        outcomes.append(Outcome.POLICIES_UNREADABLE)
    rows = []
    for kind, name, item, last_run, job in jobs:
        sched = cast("cron.Scheduled", item)  # a policy or a plan with a schedule
        is_due = cron.is_due(sched, last_run, now)
        nxt = next(iter(cron.next_runs(sched.schedule, after=now, count=1, timezone=sched.timezone)), None)
        rows.append({kind: name, "due": is_due, "last_run": last_run, "next_run": nxt})
        if not as_json:
            when = nxt.isoformat(timespec="minutes") if nxt else "never"
            label = name if kind == "policy" else f"plan {name}"
            click.echo(f"{label:<20} {'due' if is_due else 'not due':<8} next {when}")
        if run_due and is_due:
            with _policy_lock(repo.config.repository_id, name if kind == "policy" else f"dr:{name}") as got:
                if not got:
                    output.warning("still running elsewhere on this machine; skipped", subject=f"{kind} {name}")
                    rows[-1]["skipped"] = "running elsewhere"
                    continue
                try:
                    outcomes.append(job(as_json, rows[-1]))
                except SnapvaultError as e:
                    output.error(str(e), subject=f"{kind} {name}")
                    rows[-1]["error"] = " ".join(str(e).split())
                    outcomes.append(Outcome.POLICY_FAILED)
    if as_json:
        output.document(rows)
    return worst(outcomes)


def _rule_options(f: Any) -> Any:
    """The ad-hoc retention rules and the selection of ``forget ID...|--keep-*``."""
    decorators = [
        click.option("--keep-last", type=int, help="Keep the N newest snapshots of each group."),
        click.option("--keep-hourly", type=int),
        click.option("--keep-daily", type=int),
        click.option("--keep-weekly", type=int),
        click.option("--keep-monthly", type=int),
        click.option("--keep-yearly", type=int),
        click.option("--keep-within", help="Keep snapshots newer than this: 7d, 36h, 2w."),
        click.option("--keep-tag", multiple=True, help="Keep snapshots with this tag; repeatable."),
        click.option("--timezone", default="UTC", show_default=True, help="IANA timezone of the calendar buckets."),
        click.option("--host", "hosts", multiple=True, help="Only snapshots of this host; repeatable: any."),
        click.option("--tag", "tags", multiple=True, help="Only snapshots with these tags (a,b: both); repeatable."),
        click.option("--path", "paths", multiple=True, help="Only snapshots holding this path; repeatable: all."),
        click.option(
            "--group-by", default="host,paths", show_default=True, help="Apply the rules per group of host,paths,tags."
        ),
    ]
    for decorate in reversed(decorators):
        f = decorate(f)
    return f


_RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within")


@click.command()
@click.argument("snapshot_ids", nargs=-1, metavar="[SNAPSHOT]...")
@click.option("--policy", "policy_name", help="Only this policy (with IDs or --keep-*: only its snapshots).")
@_rule_options
@click.option("--dry-run", is_flag=True, help="Show the decisions; remove nothing.")
@click.option("--prune", "then_prune", is_flag=True, help="Then prune: free the data no snapshot uses any more.")
@prune_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def forget(
    obj: Context,
    /,
    snapshot_ids: tuple[str, ...],
    policy_name: str | None,
    dry_run: bool,
    then_prune: bool,
    max_repack: str,
    max_unused: str,
    as_json: bool,
    **rules: Any,
) -> Outcome:
    """Remove snapshots: those each policy's retention does not keep, those named by ID, or
    those --keep-* rules do not keep (data stays until a prune, or goes at once with --prune).

    Without IDs or --keep-* rules, each stored policy's retention is applied to its snapshots;
    a policy that cannot be read here is skipped, named on stderr, and the exit code is 1 (and
    --prune does not run: an unreadable policy may be one that keeps snapshots). --keep-*
    rules apply to every snapshot --host/--tag/--path/--policy select, per --group-by group
    (default host,paths); a snapshot any rule keeps stays.
    """
    adhoc = bool(snapshot_ids) or any(rules[k] is not None for k in _RULES) or bool(rules["keep_tag"])
    repo_filters = rules["hosts"] or rules["tags"] or rules["paths"]
    if not adhoc and repo_filters:
        fail("--host, --tag and --path select snapshots for IDs or --keep-* rules; give one of those")
    repo = obj.open()
    rows: list[dict[str, Any]]
    if adhoc:
        rows = _forget_adhoc(repo, snapshot_ids, policy_name, dry_run, as_json, rules)
        outcome = Outcome.DONE
    else:
        rows, outcome = _forget_policies(repo, policy_name, dry_run, as_json)
    if not then_prune:
        if as_json:
            output.document(rows)
    elif outcome == Outcome.DONE:
        from dataclasses import asdict

        from snapvault.cli.progress import bar

        repack, unused = fraction(max_repack, "--max-repack"), fraction(max_unused, "--max-unused")
        with bar("prune") as b:
            result = repo.prune(now=_now(), dry_run=dry_run, max_repack=repack, max_unused=unused, callback=b)
        if as_json:
            output.document({"forget": rows, "prune": asdict(result)})
        else:
            report(result, as_json=False)
    return outcome


def _decision_lines(label: str, decision: Decision, dry_run: bool) -> None:
    for sid in decision.keep:
        output.info(f"{label}: keep   {sid[:8]}  {', '.join(decision.reasons[sid])}")
    verb = "would remove" if dry_run else "remove"
    for sid in decision.remove:
        output.info(f"{label}: {verb} {sid[:8]}  {', '.join(decision.reasons[sid])}")


def _decision_json(decision: Decision, removed: list[str]) -> dict[str, Any]:
    return {
        "keep": list(decision.keep),
        "remove": list(decision.remove),
        "reasons": {k: list(v) for k, v in decision.reasons.items()},
        "removed": removed,
    }


def _forget_policies(
    repo: Repository, policy_name: str | None, dry_run: bool, as_json: bool
) -> tuple[list[dict[str, Any]], Outcome]:
    """The policy form: each stored policy's retention over its own snapshots."""
    from snapvault import forget as do_forget

    results = do_forget(repo, policy=policy_name, now=_now(), dry_run=dry_run)
    # With --policy, forget has already read that one policy or failed.
    outcome = Outcome.DONE if policy_name else _report_broken(repo.broken_policies())
    if not as_json:
        for r in results:
            _decision_lines(r.policy, r.decision, dry_run)
        if not results:
            output.info("no policy with a retention rule")
    return [{"policy": r.policy, **_decision_json(r.decision, r.removed)} for r in results], outcome


def _forget_adhoc(
    repo: Repository,
    snapshot_ids: tuple[str, ...],
    policy_name: str | None,
    dry_run: bool,
    as_json: bool,
    rules: dict[str, Any],
) -> list[dict[str, Any]]:
    """IDs or --keep-* rules, per group of the selected snapshots."""
    results = repo.forget(
        list(snapshot_ids) or None,
        **{k: rules[k] for k in _RULES},
        keep_tags=rules["keep_tag"],
        timezone=rules["timezone"],
        hosts=rules["hosts"],
        tags=rules["tags"],
        paths=[os.path.abspath(p) for p in rules["paths"]],
        policy=policy_name,
        group_by=rules["group_by"],
        now=_now(),
        dry_run=dry_run,
    )
    if not as_json:
        for r in results:
            _decision_lines(r.group.label(), r.decision, dry_run)
        if not results:
            output.info("no snapshot selected")
    return [{"group": r.group.to_json(), **_decision_json(r.decision, r.removed)} for r in results]


@click.command()
@click.option("--policy", "policy_name", help="Only this policy.")
@click.option("--last", default=30, show_default=True, help="How many recent runs to count.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats(obj: Context, policy_name: str | None, last: int, as_json: bool) -> None:
    """Monitoring figures per policy: last success and failure, success rate, bytes added."""
    from snapvault.policy.records import read_policies
    from snapvault.policy.run import policy_stats

    repo = obj.open()
    if policy_name:
        names = [policy_name]
    else:
        # The figures come from run records and snapshots, so a policy that cannot be read
        # here is counted too.
        policies, broken = read_policies(repo)
        names = sorted({*policies, *(b.name for b in broken if b.name is not None)})
    rows = [policy_stats(repo, n, last=last) for n in names]
    if as_json:
        from dataclasses import asdict

        output.document([asdict(r) for r in rows])
        return
    for r in rows:
        rate = "-" if r.success_rate is None else f"{r.success_rate:.0%}"
        ok = r.last_success.isoformat(timespec="seconds") if r.last_success else "never"
        bad = r.last_failure.isoformat(timespec="seconds") if r.last_failure else "never"
        click.echo(
            f"{r.policy}: {r.runs} runs, success {rate}, last success {ok}, last failure {bad}, "
            f"{r.snapshots} snapshots, {r.storage_used / 2**20:.1f} MiB stored"
        )
