"""``snapvault dr``: store DR plans in the repository ``-r`` names (``dr plan``), and run them.

Each command binds its plan to this process: the sites' password and option references are
looked up in this environment, stored shell hooks run only where the allow file of policy hooks
lists their SHA-256, and ``now`` is this machine's clock. A failure of the whole plan is the
library's error (one line, exit 1); a run that found a site not replicated, an objective not
met or a drill failed prints everything, then ends with one error line and exit 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from snapvault.cli import output
from snapvault.cli.common import Context, allow_file, allowed_hooks, fail
from snapvault.cli.exits import CliError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from snapvault.dr.model import DrillRecord, FailoverRecord, Site
    from snapvault.dr.plan import DRPlan
    from snapvault.dr.status import PlanStatus, ReplicateResult


class ReplicationFailed(CliError):
    """``dr replicate`` reached its plans, but a site did not get its copies (named above)."""


class ObjectivesNotMet(CliError):
    """``dr status``: an objective is violated or failed, or a site cannot be reached."""


def _now() -> datetime:
    return datetime.now(UTC)


def _when(t: datetime | None) -> str:
    return "-" if t is None else t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _span(seconds: float | None) -> str:
    """``2h 05m``, ``3m 10s``, ``12s``, ``0.25s``: how long, for people."""
    if seconds is None:
        return "-"
    if abs(seconds) < 10:
        return f"{seconds:.2f}s"
    h, rem = divmod(int(abs(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _invalid(e: ValidationError) -> str:
    """A pydantic error as one line: ``field: why; field: why``."""
    parts = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"])
        why = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {why}" if where else why)
    return "; ".join(parts)


def _bind(obj: Context, plan: DRPlan, stages: Iterable[str] = ()) -> DRPlan:
    """The plan bound to this process; its stored hooks of ``stages`` are checked first, so a
    hook not allowed here stops the command before anything ran."""
    from snapvault.errors import HookError
    from snapvault.policy.hooks import hook_hash

    path = allow_file()
    allowed = allowed_hooks(path)
    for stage in stages:
        for command in plan.hooks.get(stage, []):
            digest = hook_hash(command)
            if digest not in allowed:
                raise HookError(
                    f"DR plan {plan.name!r}: {stage} hook {command!r} is not allowed on this machine "
                    f"(sha256 {digest}); review it ('snapvault dr plan show {plan.name}'), then allow it "
                    f"with 'snapvault dr plan allow-hooks {plan.name}' or add the hash to {path}"
                )
    return plan.bind(env=os.environ, allowed_hooks=allowed, max_kdf_memory_kib=obj.max_kdf_memory_kib)


def _plans(obj: Context, name: str | None) -> list[DRPlan]:
    """The plan ``name`` (PlanNotFound if there is none), or every stored plan."""
    from snapvault.dr.plan import DRPlan

    repo = obj.open()
    if name is not None:
        return [DRPlan.load(repo, name)]
    plans = list(DRPlan.stored(repo).values())
    if not plans:
        output.info("no DR plan stored")
    return plans


# -- sites -----------------------------------------------------------------------------------

_SITE_KEYS = (
    *("name", "url", "region", "rpo", "rto", "no-password"),
    *("options-env", "options-file", "password-env", "password-file"),
)
_SITE_HELP = f"A site as KEY=VALUE,... with keys {', '.join(_SITE_KEYS)}."


def _parse_site(text: str, option: str) -> Site:
    """A site from ``name=s3,url=s3://b/vault,password-env=PW_S3`` (values hold no comma);
    local paths are made absolute, as the plan is stored and run from anywhere."""
    from pydantic import ValidationError

    from snapvault.dr.model import Site

    fields: dict[str, Any] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower().replace("_", "-")
        if key not in _SITE_KEYS:
            raise click.BadParameter(
                f"unknown key {key!r} in {text!r}; keys: {', '.join(_SITE_KEYS)}", param_hint=option
            )
        attr = key.replace("-", "_")
        if attr in fields:
            raise click.BadParameter(f"{key} given twice in {text!r}", param_hint=option)
        if key == "no-password":
            if sep and value.lower() not in ("true", "false"):
                raise click.BadParameter(f"no-password takes no value, or true/false, not {value!r}", param_hint=option)
            fields[attr] = not sep or value.lower() == "true"
            continue
        if not sep:
            raise click.BadParameter(f"{item!r} in {text!r} is not KEY=VALUE", param_hint=option)
        if key in ("options-file", "password-file") or (key == "url" and "://" not in value):
            value = os.path.abspath(value)
        fields[attr] = value
    try:
        return Site(**fields)
    except ValidationError as e:
        raise click.BadParameter(f"{text!r}: {_invalid(e)}", param_hint=option) from None


# -- dr plan ---------------------------------------------------------------------------------


@click.group()
def dr() -> None:
    """Disaster recovery: replicate to other sites, check objectives, drill, fail over."""


@dr.group()
def plan() -> None:
    """Manage the DR plans stored in the repository."""


# snapvault.dr.model.HOOK_STAGES, spelled out: importing the model (pydantic) when the CLI
# starts would cost every command 0.1 s. A test keeps the two equal.
HOOK_STAGES = ("pre_replicate", "post_replicate", "pre_failover", "promote", "post_failover")


def _hook_options(f: Any) -> Any:
    for stage in reversed(HOOK_STAGES):
        flag = "--" + stage.replace("_", "-")
        f = click.option(flag, stage, multiple=True, metavar="CMD", help=f"Shell command of the {stage} stage.")(f)
    return f


@plan.command(name="add")
@click.argument("name", required=False)
@click.option("--file", "from_file", type=click.Path(dir_okay=False), help="Read the plan from a JSON file.")
@click.option("--primary", metavar="SITE", help="Where backups go until a failover. " + _SITE_HELP)
@click.option("--replica", "replicas", multiple=True, metavar="SITE", help="A copy; repeatable. " + _SITE_HELP)
@click.option("--rpo", metavar="DURATION", help="Recovery point objective: 6h, 1d12h, 30min.")
@click.option("--rto", metavar="DURATION", help="Recovery time objective, checked by drills.")
@click.option("--policy", "policies", multiple=True, help="Cover this policy's snapshots; repeatable.")
@click.option("--tag", "tags", multiple=True, help="Cover snapshots with this tag; repeatable.")
@click.option("--rto-policy", help="Drills restore this policy's latest snapshot (default: newest covered).")
@click.option("--sample-files", type=click.IntRange(min=1), help="Drills restore N files at random.")
@click.option("--sample-percent", type=click.FloatRange(0, 100, min_open=True), help="Or N% of the files.")
@click.option("--drill-target", type=click.Path(file_okay=False), help="Drills restore below this directory.")
@click.option("--no-verify-packs", is_flag=True, help="Drills do not read every pack of the snapshot.")
@click.option("--independent-keys", is_flag=True, help="The sites have keys of their own (copies re-encrypt).")
@click.option("--schedule", metavar="CRON", help="When 'snapvault due --run' replicates, e.g. '0 */6 * * *'.")
@click.option("--timezone", help="IANA timezone of the schedule (default UTC).")
@_hook_options
@click.option("--replace", is_flag=True, help="Replace a stored plan of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the saved plan as JSON.")
@click.pass_obj
def plan_add(
    obj: Context, /, name: str | None, from_file: str | None, replace: bool, as_json: bool, **opts: Any
) -> None:
    """Store a DR plan NAME (from options, or from a JSON file with --file)."""
    from pydantic import ValidationError

    from snapvault.dr.plan import DRPlan
    from snapvault.errors import ConfigError

    try:
        if from_file:
            given = [k for k, v in opts.items() if v not in (None, False, ())]  # the plan's own options
            if given:
                fail(f"--file holds the whole plan; drop --{given[0].replace('_', '-')}")
            try:
                text = Path(from_file).read_text(encoding="utf-8")
            except OSError as e:
                fail(f"cannot read {from_file}: {e.strerror}")
            new = DRPlan.model_validate_json(text)
            if name and name != new.name:
                fail(f"the file defines plan {new.name!r}, not {name!r}")
        else:
            new = DRPlan.model_validate(_plan_fields(name, opts))
    except ValidationError as e:
        raise ConfigError(f"invalid DR plan: {_invalid(e)}") from None
    if new.schedule is not None:
        from snapvault.policy import cron

        cron.next_runs(new.schedule, after=_now(), timezone=new.timezone)  # an unknown zone fails here
    repo = obj.open()
    exists = new.name in DRPlan.stored(repo)
    if exists and not replace:
        fail(f"DR plan {new.name!r} exists; use --replace to change it")
    new.save(repo, now=_now())
    if as_json:
        output.document({"saved": new.name, "replaced": exists, "plan": new.model_dump(mode="json")})
        return
    output.info(
        f"saved DR plan {new.name}: primary {new.primary.name}, replicas {', '.join(r.name for r in new.replicas)}"
    )
    if any(new.hooks.values()):
        output.note(f"its shell hooks run only where allowed: 'snapvault dr plan allow-hooks {new.name}'")


def _plan_fields(name: str | None, opts: dict[str, Any]) -> dict[str, Any]:
    """The plan the options describe, as DRPlan's fields."""
    if not name:
        fail("give a plan NAME (or --file)")
    if not opts["primary"] or not opts["replicas"] or not opts["rpo"]:
        fail("a plan needs --primary, at least one --replica, and --rpo")
    drill: dict[str, Any] = {"verify_packs": not opts["no_verify_packs"]}
    if opts["sample_files"] is not None:
        drill["sample_files"] = opts["sample_files"]
    if opts["sample_percent"] is not None:
        drill["sample_percent"] = opts["sample_percent"]
    if opts["drill_target"]:
        drill["target"] = os.path.abspath(opts["drill_target"])
    return {
        "name": name,
        "primary": _parse_site(opts["primary"], "--primary"),
        "replicas": [_parse_site(r, "--replica") for r in opts["replicas"]],
        "rpo": opts["rpo"],
        "rto": opts["rto"],
        "policies": list(opts["policies"]),
        "tags": list(opts["tags"]),
        "rto_policy": opts["rto_policy"],
        "drill_settings": drill,
        "shared_params": not opts["independent_keys"],
        "schedule": opts["schedule"],
        "timezone": opts["timezone"] or "UTC",
        "hooks": {stage: list(opts[stage]) for stage in HOOK_STAGES if opts[stage]},
    }


@plan.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the plans as JSON.")
@click.pass_obj
def plan_list(obj: Context, as_json: bool) -> None:
    """List the stored DR plans."""
    from snapvault.dr.plan import DRPlan

    plans = DRPlan.stored(obj.open())
    if as_json:
        output.document([p.model_dump(mode="json") for p in plans.values()])
        return
    for name, p in plans.items():
        rto = "-" if p.rto is None else _span(p.rto.total_seconds())
        sites = f"{p.primary.name} -> {','.join(r.name for r in p.replicas)}"
        click.echo(f"{name:<20} {sites}  rpo {_span(p.rpo.total_seconds())}  rto {rto}  schedule {p.schedule or '-'}")
    if not plans:
        output.info("no DR plan stored")


@plan.command(name="show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The same JSON document (show always prints one).")
@click.pass_obj
def plan_show(obj: Context, name: str, as_json: bool) -> None:
    """Print a stored DR plan as JSON (the form 'dr plan add --file' reads)."""
    from snapvault.dr.plan import DRPlan

    output.document(DRPlan.load(obj.open(), name).model_dump(mode="json"))


@plan.command(name="remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.pass_obj
def plan_remove(obj: Context, name: str, as_json: bool) -> None:
    """Remove a stored DR plan (its records and the sites' snapshots stay)."""
    from snapvault.dr.plan import DRPlan

    DRPlan.remove(obj.open(), name, now=_now())
    if as_json:
        output.document({"removed": name})
    else:
        output.info(f"removed DR plan {name}")


@plan.command(name="allow-hooks")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the hooks and their hashes as JSON.")
@click.pass_obj
def plan_allow_hooks(obj: Context, name: str, as_json: bool) -> None:
    """Allow the shell hooks of the stored DR plan NAME on this machine (review them first:
    'snapvault dr plan show NAME'); their SHA-256 go to the allow file policy hooks use."""
    from snapvault.dr.plan import DRPlan
    from snapvault.policy.hooks import hook_hash

    p = DRPlan.load(obj.open(), name)
    path = allow_file()
    allowed = allowed_hooks(path)
    rows, lines = [], []
    for stage in HOOK_STAGES:
        for command in p.hooks.get(stage, []):
            digest = hook_hash(command)
            rows.append({"stage": stage, "command": command, "sha256": digest, "already_allowed": digest in allowed})
            if digest in allowed:
                output.info(f"already allowed: {stage} hook {command!r} (sha256 {digest})")
                continue
            allowed |= {digest}
            lines.append(f"# DR plan {name!r} {stage} hook: {command!r}\n{digest}\n")
            output.info(f"allowed: {stage} hook {command!r} (sha256 {digest})")
    if not rows:
        output.info(f"DR plan {name} has no shell hooks")
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
        output.info(f"written to {path}")
    if as_json:
        output.document({"plan": name, "hooks": rows, "allow_file": str(path)})


# -- running plans ---------------------------------------------------------------------------


def _say_replication(result: ReplicateResult) -> None:
    for r in result.sites:
        if r.ok:
            lag = "-" if r.lag_s is None else _span(r.lag_s)
            output.info(
                f"plan {result.plan}: {result.primary} -> {r.site}: {r.copied} copied, {r.skipped} skipped, "
                f"{_mib(r.bytes_uploaded)} uploaded, lag {lag}, {_span(r.seconds)}"
            )
        else:
            output.error(f"not replicated: {r.error_type}: {r.error}", subject=f"plan {result.plan} site {r.site}")


@dr.command()
@click.argument("plan_name", required=False, metavar="[PLAN]")
@click.option("--json", "as_json", is_flag=True, help="Print the replication results as JSON.")
@click.pass_obj
def replicate(obj: Context, plan_name: str | None, as_json: bool) -> None:
    """Copy to every site of PLAN (default: of every stored plan) the covered snapshots it
    lacks, from the primary in force; exit 1 if a site was not replicated."""

    from snapvault.cli.progress import bar
    from snapvault.errors import SnapvaultError

    docs: list[dict[str, Any]] = []
    failed: list[str] = []
    for p in _plans(obj, plan_name):
        try:
            with bar(f"replicate {p.name}") as b:
                result = _bind(obj, p, ("pre_replicate", "post_replicate")).replicate(now=_now(), callback=b)
        except SnapvaultError as e:
            if plan_name is not None:
                raise
            # With every plan, one whose primary cannot be read is named and the others still run.
            error = {"plan": p.name, "ok": False, "error": " ".join(str(e).split()), "error_type": type(e).__name__}
            output.error(f"{error['error_type']}: {error['error']}", subject=f"plan {p.name}")
            docs.append(error)
            failed.append(p.name)
            continue
        _say_replication(result)
        docs.append(result.to_json())
        failed += [f"{p.name}/{r.site}" for r in result.sites if not r.ok]
    if as_json:
        output.document(docs[0] if plan_name else docs)
    if failed:
        raise ReplicationFailed(f"not replicated: {', '.join(failed)}")


def _say_status(st: PlanStatus) -> None:
    verdict = "all objectives met" if st.ok else f"{len(st.violations)} problem(s)"
    click.echo(f"plan {st.plan} at {_when(st.time)}: primary {st.primary}; {verdict}")
    if st.failover is not None:
        f = st.failover
        click.echo(f"  {f.kind} to {f.primary} at {_when(f.time)} (from {f.previous}): {f.reason}")
    for s in st.sites:
        state = "reachable" if s.reachable else f"UNREACHABLE ({s.error_type}: {s.error})"
        parts = [o.objective + " " + o.verdict + (f" ({o.detail})" if o.detail else "") for o in s.objectives]
        if (d := s.last_drill) is not None:
            parts.append(f"drilled {_when(d.time)} {'ok' if d.ok else 'FAILED'}")
        if not s.primary:
            r = s.last_replication
            parts.append(
                "never replicated" if r is None else f"replicated {_when(r.time)} {'ok' if r.ok else 'FAILED'}"
            )
        stale = "  STALE (missed a failover; repaired)" if s.stale else ""
        marker = "*" if s.primary else " "
        click.echo(f"{marker} {s.site:<12} {s.region or '-':<14} {state}{stale}; {'; '.join(parts)}")


@dr.command()
@click.argument("plan_name", required=False, metavar="[PLAN]")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(obj: Context, plan_name: str | None, as_json: bool) -> None:
    """Per site of PLAN (default: every plan): the primary (*), reachable, newest snapshot's age
    against the RPO, last drill against the RTO; exit 1 when any objective is not met."""
    now = _now()
    statuses: list[PlanStatus] = [_bind(obj, p).status(now=now) for p in _plans(obj, plan_name)]
    if as_json:
        docs = [st.to_json() for st in statuses]
        output.document(docs[0] if plan_name else docs)
    else:
        for st in statuses:
            _say_status(st)
    problems = [f"plan {st.plan}: {v}" for st in statuses for v in st.violations]
    if problems:
        raise ObjectivesNotMet(f"objectives not met: {'; '.join(problems)}")


def _say_drill(rec: DrillRecord) -> None:
    who = f"plan {rec.plan} site {rec.site}"
    if not rec.ok:
        output.error(f"drill failed: {_drill_error(rec)}", subject=who)
        return
    speed = "-" if rec.throughput_bps is None else f"{_mib(rec.throughput_bps)}/s"
    goal, estimate = rec.rto_objective_s, rec.rto_estimate_s
    objective = "" if goal is None else f", objective {_span(goal)}: {'met' if (estimate or 0) <= goal else 'VIOLATED'}"
    snap = (rec.snapshot_id or "")[:8]
    output.info(
        f"{who}: drill passed: snapshot {snap} of {_when(rec.snapshot_time)}, {rec.files_restored} files, "
        f"{_mib(rec.bytes_restored)} restored ({rec.sample}) in {_span(rec.restore_s)} ({speed}); "
        f"open {_span(rec.setup_s)}, check {_span(rec.check_s)}, verify {_span(rec.verify_s)}; "
        f"full restore estimated {_span(rec.rto_estimate_s)}{objective}"
    )


def _drill_error(rec: DrillRecord) -> str:
    """The drill's error, and the snapshot, path and pack where the message does not say them."""
    text = f"{rec.error_type}: {rec.error}"
    for label, value in (("snapshot", rec.snapshot_id), ("path", rec.path), ("pack", rec.pack_id)):
        if value and value[:8] not in (rec.error or ""):
            text += f", {label} {value}"
    return text


@dr.command()
@click.argument("plan_name", metavar="PLAN")
@click.option("--site", help="Drill this site (default: every site but the primary, in turn).")
@click.option("--json", "as_json", is_flag=True, help="Print the drill records as JSON.")
@click.pass_obj
def drill(obj: Context, plan_name: str, site: str | None, as_json: bool) -> None:
    """Restore from a site of PLAN for real, verify every byte, and measure it; exit 1 if a
    drill failed (its line names the snapshot, the path and the pack)."""
    from snapvault.cli.progress import bar
    from snapvault.dr.plan import DRPlan
    from snapvault.errors import DrillFailed

    p = _bind(obj, DRPlan.load(obj.open(), plan_name))
    if site is not None:
        targets = [p.site(site).name]
    else:
        primary = p.primary_for(_now()).name
        targets = [s.name for s in p.sites if s.name != primary]
    records = []
    for name in targets:
        with bar(f"drill {name}") as b:
            rec = p.drill(site=name, now=_now(), callback=b)
        _say_drill(rec)
        records.append(rec)
    if as_json:
        output.document([r.model_dump(mode="json") for r in records])
    bad = [r for r in records if not r.ok]
    if bad:
        raise DrillFailed(
            "; ".join(f"site {r.site}: {_drill_error(r)}" for r in bad),
            snapshot_id=bad[0].snapshot_id,
            path=bad[0].path,
            pack_id=bad[0].pack_id,
        )


_FAILOVER_STAGES = ("pre_failover", "promote", "post_failover")


def _say_failover(p: DRPlan, rec: FailoverRecord, as_json: bool) -> None:
    if as_json:
        output.document(rec.model_dump(mode="json"))
        return
    for h in rec.hooks:
        output.info(f"{h.stage} hook {h.command!r} exited {h.exit_code}")
        for line in h.output.splitlines():
            output.detail(f"  {line}")
    output.info(
        f"plan {rec.plan}: {rec.kind} from {rec.previous} to {rec.primary} at {_when(rec.time)}; "
        f"back up into {p.site(rec.primary).url} from now on"
    )


@dr.command()
@click.argument("plan_name", metavar="PLAN")
@click.option("--to", "to", required=True, metavar="SITE", help="The site to promote.")
@click.option("--reason", required=True, help="Why (kept in the failover record).")
@click.option("--json", "as_json", is_flag=True, help="Print the failover record as JSON.")
@click.pass_obj
def failover(obj: Context, plan_name: str, to: str, reason: str, as_json: bool) -> None:
    """Make site SITE the primary of PLAN: its hooks, a drill it must pass, then the record on
    every reachable site. Backups of covered policies into the old primary are refused."""
    from snapvault.dr.plan import DRPlan

    p = _bind(obj, DRPlan.load(obj.open(), plan_name), _FAILOVER_STAGES)
    _say_failover(p, p.failover(to=to, reason=reason, now=_now()), as_json)


@dr.command()
@click.argument("plan_name", metavar="PLAN")
@click.option("--reason", required=True, help="Why (kept in the failover record).")
@click.option("--json", "as_json", is_flag=True, help="Print the failback record as JSON.")
@click.pass_obj
def failback(obj: Context, plan_name: str, reason: str, as_json: bool) -> None:
    """Return PLAN's writes to its own primary: copy it what was backed up meanwhile, then fail
    over to it (drill first, as always)."""
    from snapvault.dr.plan import DRPlan

    p = _bind(obj, DRPlan.load(obj.open(), plan_name), _FAILOVER_STAGES)
    _say_failover(p, p.failback(reason=reason, now=_now()), as_json)


@dr.command()
@click.argument("plan_name", metavar="PLAN")
@click.option("--format", "fmt", type=click.Choice(["json", "markdown", "html"]), default="json", show_default=True)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Write it to FILE (else stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print {plan, format, output, report} as JSON.")
@click.pass_obj
def report(obj: Context, plan_name: str, fmt: str, out: str | None, as_json: bool) -> None:
    """PLAN's objectives, sites, replication lag and drill history, as JSON, Markdown or a
    self-contained HTML page."""
    from snapvault.dr.plan import DRPlan

    p = _bind(obj, DRPlan.load(obj.open(), plan_name))
    text = p.report(now=_now(), format=fmt)  # type: ignore[arg-type]  # click.Choice checked it
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
        output.info(f"wrote the {fmt} report of plan {plan_name} to {out}")
    if as_json:
        body: Any = None if out is not None else json.loads(text) if fmt == "json" else text
        output.document({"plan": plan_name, "format": fmt, "output": out, "report": body})
    elif out is None:
        click.echo(text, nl=not text.endswith("\n"))
