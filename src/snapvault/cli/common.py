"""What every command module shares: the :class:`Context`, options, passwords, output helpers.

Command modules import this module and :mod:`snapvault.cli.exits`, never each other or
:mod:`snapvault.cli.main`, so the package has no import cycle.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from snapvault.cli import output
from snapvault.cli.exits import CliError, Outcome

if TYPE_CHECKING:
    from snapvault.handle import Repository
    from snapvault.maintenance.prune import PruneResult
    from snapvault.pipeline.tree import Node
    from snapvault.repository.manifest import Manifest


def fail(message: str) -> NoReturn:
    """Stop the command with ``snapvault: error: MESSAGE`` on stderr (exit code 1)."""
    raise CliError(message)


def parse_options(pairs: tuple[str, ...], options_file: str | None = None) -> dict[str, Any]:
    """Storage options: a JSON file's object first, then each KEY=VALUE on top.

    A value of ``true``/``false`` becomes a boolean and one starting with ``{`` or ``[`` is
    parsed as JSON (nested options such as ``client_kwargs``); everything else stays text.
    """
    out: dict[str, Any] = {}
    if options_file:
        try:
            with open(options_file, encoding="utf-8") as f:
                loaded = json.load(f)
        except OSError as e:
            fail(f"cannot read options file {options_file}: {e.strerror}")
        except ValueError as e:
            fail(f"options file {options_file} is not JSON: {e}")
        if not isinstance(loaded, dict):
            fail(f"options file {options_file} must hold a JSON object")
        out.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"storage option {pair!r} is not KEY=VALUE")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        elif value[:1] in ("{", "["):
            try:
                out[key] = json.loads(value)
            except ValueError as e:
                fail(f"storage option {key} is not valid JSON: {e}")
        else:
            out[key] = value
    return out


def read_password(password_file: str | None, env_prefix: str, prompt: str, *, confirm: bool = False) -> str:
    """A password from the file option, ``<PREFIX>_PASSWORD_FILE``, ``<PREFIX>_PASSWORD``, or a TTY."""
    path = password_file or os.environ.get(f"{env_prefix}_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as e:
            fail(f"cannot read password file {path}: {e.strerror}")
    env = os.environ.get(f"{env_prefix}_PASSWORD")
    if env is not None:
        return env
    if sys.stdin.isatty():
        value: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
        return value
    fail(f"no {prompt} given: set {env_prefix}_PASSWORD or {env_prefix}_PASSWORD_FILE, or use a password file option")


def open_repository(
    url: str,
    options: dict[str, Any],
    password: Callable[[], str],
    *,
    no_password: bool,
    flag: str,
    max_kdf_memory_kib: int = 128 << 10,
) -> Repository:
    """Open a repository for the CLI, keeping docs/format.md's promise that nothing is written
    in clear to a repository the user believes is encrypted.

    An unencrypted repository is opened only when the user said so with ``flag``
    (``no_password``); without it the config's ``"encryption": "none"`` is refused before any
    password is read or anything written, since anyone who can write the storage can swap the
    config. With ``flag`` an encrypted repository is refused too: the flag never falls back.
    """
    from snapvault.errors import RepositoryNotFound, WrongPassword
    from snapvault.handle import Repository
    from snapvault.repository.config import RepoConfig
    from snapvault.repository.layout import CONFIG as CONFIG_KEY
    from snapvault.repository.repo import get_limited
    from snapvault.storage import open_store

    store = open_store(url, storage_options=options)
    if not store.exists(CONFIG_KEY):
        raise RepositoryNotFound(f"no snapvault repository at {store.url}")
    config = RepoConfig.from_bytes(get_limited(store, CONFIG_KEY))
    plain = config.encryption == "none"
    if plain and not no_password:
        raise WrongPassword(
            f"the repository at {store.url} is NOT encrypted; refusing to use it "
            f"(if you created it unencrypted on purpose, pass {flag})"
        )
    if no_password and not plain:
        raise WrongPassword(f"the repository at {store.url} is encrypted; drop {flag} and give its password")
    repo = Repository.open(url, None if plain else password(), store=store, max_kdf_memory_kib=max_kdf_memory_kib)
    if not repo.encrypted:
        output.note(f"the repository at {repo.url} is NOT encrypted")
    return repo


class Context:
    """Options shared by every subcommand."""

    def __init__(
        self,
        repo: str | None,
        options: dict[str, Any],
        password_file: str | None,
        *,
        no_password: bool = False,
        max_kdf_memory_kib: int = 128 << 10,
    ) -> None:
        self.repo_url = repo
        self.max_kdf_memory_kib = max_kdf_memory_kib
        self.used_password: str | None = None
        self.options = options
        self.password_file = password_file
        self.no_password = no_password

    def url(self) -> str:
        if not self.repo_url:
            fail("no repository given: use -r URL or set SNAPVAULT_REPOSITORY")
        return self.repo_url

    def password(self, *, confirm: bool = False) -> str:
        return read_password(self.password_file, "SNAPVAULT", "repository password", confirm=confirm)

    def open(self) -> Repository:
        def remember() -> str:
            # Kept for the commands that re-wrap the key file in use (key rotate): a prompt
            # is not asked twice.
            self.used_password = self.password()
            return self.used_password

        return open_repository(
            self.url(),
            self.options,
            remember,
            no_password=self.no_password,
            flag="--insecure-no-password",
            max_kdf_memory_kib=self.max_kdf_memory_kib,
        )


def from_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options naming a second (source) repository: --from-option, --from-options-file,
    --from-password-file (or SNAPVAULT_FROM_PASSWORD[_FILE]), --from-insecure-no-password."""
    decorators = (
        click.option(
            "--from-insecure-no-password", is_flag=True, help="The source repository is unencrypted; use it anyway."
        ),
        click.option("--from-password-file", type=click.Path(dir_okay=False), help="Source repository password file."),
        click.option(
            "--from-options-file", type=click.Path(dir_okay=False), help="JSON file of source storage options."
        ),
        click.option("--from-option", multiple=True, metavar="KEY=VALUE", help="Source storage option; repeatable."),
    )
    for decorate in decorators:
        f = decorate(f)
    return f


def open_source(
    url: str,
    from_option: tuple[str, ...],
    from_options_file: str | None,
    from_password_file: str | None,
    from_insecure_no_password: bool = False,
    *,
    max_kdf_memory_kib: int = 128 << 10,
) -> Repository:
    """Open the repository named by the --from options (under the global --max-kdf-memory)."""
    options = parse_options(from_option, from_options_file)
    return open_repository(
        url,
        options,
        lambda: read_password(from_password_file, "SNAPVAULT_FROM", "source repository password"),
        no_password=from_insecure_no_password,
        flag="--from-insecure-no-password",
        max_kdf_memory_kib=max_kdf_memory_kib,
    )


def manifest_json(m: Manifest) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(m.model_dump_json())
    return {"id": m.id, "short_id": m.short_id, **d}


def report_backup(m: Manifest, as_json: bool, prefix: str = "") -> Outcome:
    """Print a finished backup (a summary line or the manifest as JSON) and its warnings; a
    snapshot whose sources could not all be read consistently is a partial success."""
    if as_json:
        output.document(manifest_json(m))
    else:
        s = m.stats
        kind = f"{m.backup_type} " if m.backup_type else ""
        output.info(
            f"{prefix}{kind}snapshot {m.short_id} saved: {s.total_files} files ({s.files_new} new, "
            f"{s.files_changed} changed, {s.files_unchanged} unchanged, {s.files_removed} removed), "
            f"{s.total_bytes / 2**20:.1f} MiB, {s.bytes_stored / 2**20:.1f} MiB added, {s.duration_s:.1f}s"
        )
    return backup_outcome(m)


def backup_outcome(m: Manifest) -> Outcome:
    """Print a finished backup's warnings; a snapshot whose sources could not all be read
    consistently is a partial success."""
    for err in m.errors:
        output.warning(f"could not read {err.path}: {err.error}")
    for path in m.inconsistent:
        output.warning(f"{path} changed while it was read")
    return Outcome.SOURCES_UNREADABLE if m.errors or m.inconsistent else Outcome.DONE


# -- prune options and report (prune and forget --prune) ------------------------------------


def fraction(text: str, option: str) -> float:
    """``10%`` (or ``0.1``) as 0.1; a usage error naming ``option`` otherwise."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        fail(f"bad {option} {text!r}: use a percentage like 10%")
    if not 0 <= value <= 1:
        fail(f"{option} must be within 0%..100%")
    return value


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def report(result: PruneResult, *, as_json: bool) -> None:
    """Print a prune's result: per reason what goes, what is repacked, what waits."""
    if as_json:
        output.document(asdict(result))
        return
    would = "would be " if result.dry_run else ""
    for reason, stats in sorted(result.marked.items()):
        verb = "repacked" if reason == "repack" else "deleted"
        output.info(f"{reason}: {stats.packs} pack(s), {_mib(stats.bytes)} {would}{verb}")
    if result.repacked_blobs:
        output.info(f"repacked {result.repacked_blobs} live blob(s), {_mib(result.repacked_bytes)} copied")
    if result.deferred.packs:
        output.info(
            f"waiting: {result.deferred.packs} pack(s), {_mib(result.deferred.bytes)} marked by an earlier prune "
            f"({result.live_writers} writer(s) still running across the mark)"
        )
    cleaned = [
        f"{n} {what}"
        for n, what in (
            (result.policy_records_removed, "superseded policy record(s)"),
            (result.writer_records_removed, "writer record(s) of crashed backups"),
            (result.temporaries_removed, "leftover .tmp file(s)"),
        )
        if n
    ]
    if cleaned:
        output.info(f"{'would remove' if result.dry_run else 'removed'}: {', '.join(cleaned)}")
    if result.rescued:
        output.info(f"rescued: {result.rescued} marked pack(s) that a newer snapshot uses were kept")
    for note in result.notes:
        output.note(note)
    output.info(
        f"{result.snapshots} snapshot(s); {result.deleted.packs} pack(s), {_mib(result.deleted.bytes)} {would}deleted; "
        f"size {_mib(result.size_before)} -> {_mib(result.size_after)}"
    )


def prune_options(f: click.decorators.FC) -> click.decorators.FC:
    """--max-repack and --max-unused."""
    f = click.option(
        "--max-unused",
        default="5%",
        show_default=True,
        metavar="N%",
        help="Repack until the unused space is at most this share of the live data.",
    )(f)
    return click.option(
        "--max-repack",
        default="10%",
        show_default=True,
        metavar="N%",
        help="Copy at most this share of the repository into new packs per run.",
    )(f)


def exclude_file_patterns(files: tuple[str, ...]) -> list[str]:
    """The patterns of ``--exclude-file`` files (one a line; blank lines and ``#`` comments
    dropped), for ``backup`` and for ``policy add``, which stores them rather than the path."""
    from snapvault.pipeline.patterns import pattern_lines

    patterns: list[str] = []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                patterns += pattern_lines(fh.read())
        except (OSError, UnicodeDecodeError) as e:
            fail(f"cannot read exclude file {f}: {getattr(e, 'strerror', None) or e}")
    return patterns


# -- what several commands share: snapshot filters, times, entries as JSON ------------------


def filter_options(f: Any) -> Any:
    """--host, --tag, --path (repeatable) and --policy: which snapshots a command looks at."""
    for decorate in (
        click.option("--policy", "policy_name", help="Only snapshots made by this policy."),
        click.option("--path", "paths", multiple=True, help="Only snapshots holding this path; repeatable: all."),
        click.option("--tag", "tags", multiple=True, help="Only snapshots with these tags (a,b: both); repeatable."),
        click.option("--host", "hosts", multiple=True, help="Only snapshots of this host; repeatable: any."),
    ):
        f = decorate(f)
    return f


def parse_time(text: str, *, option: str, date_means_end: bool) -> datetime:
    """A time option: ISO 8601 with an offset (or Z) as given, one without an offset in the
    local zone; a date (2026-03-01) is the end of that day (``restore --at``) or its start
    (``find --newer``), local time."""
    from datetime import date, time

    try:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            when = datetime.fromisoformat(text)
        else:
            # A naive datetime's astimezone() takes the local zone's offset on that date (DST included).
            return datetime.combine(day, time.max if date_means_end else time.min).astimezone()
        return when if when.utcoffset() is not None else when.astimezone()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (2026-03-01T12:00+01:00) or date (2026-03-01)", param_hint=option
        ) from None


def mtime_utc(ns: int) -> datetime:
    """A node's mtime as an aware UTC datetime."""
    # Built from whole seconds: a float of nanoseconds since 1970 has lost the microseconds.
    return datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=ns // 1000 % 10**6)


def node_json(path: str, node: Node) -> dict[str, Any]:
    """One entry of ``ls --json`` and ``find --json`` (README lists the fields)."""
    return {
        "path": path,
        "type": node.type,
        "size": node.size,
        "mode": node.mode,
        "mtime": mtime_utc(node.mtime_ns).isoformat(),
        "mtime_ns": node.mtime_ns,
        "target": node.target,
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user or None,
        "group": node.group or None,
    }


def json_list(items: Iterator[dict[str, Any]]) -> None:
    """A JSON list streamed one item a line: millions of entries are never held whole. The
    first item is had before anything is printed, so an early error prints no JSON."""
    first = next(items, None)
    click.echo("[")
    if first is not None:
        click.echo(json.dumps(first), nl=False)
        for item in items:
            click.echo(",\n" + json.dumps(item), nl=False)
        click.echo()
    click.echo("]")


# -- the allowed shell hooks of this machine (policy and DR plan hooks) ----------------------


def allow_file() -> Path:
    """This machine's list of allowed shell hooks: ``SNAPVAULT_HOOKS_ALLOW``, else
    ``$XDG_CONFIG_HOME/snapvault/hooks.allow`` (``~/.config`` by default)."""
    named = os.environ.get("SNAPVAULT_HOOKS_ALLOW")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "snapvault" / "hooks.allow"


def allowed_hooks(path: Path) -> frozenset[str]:
    """The SHA-256 hashes (hex, one a line; ``#`` starts a comment) in the allow file; none if
    it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    except OSError as e:
        fail(f"cannot read the allowed hooks file {path}: {e.strerror}")
    out = set()
    for n, line in enumerate(text.splitlines(), 1):
        word = line.split("#", 1)[0].strip().lower()
        if not word:
            continue
        if len(word) != 64 or any(c not in "0123456789abcdef" for c in word):
            fail(f"{path} line {n}: {word[:20]!r} is not a SHA-256 hash (64 hex digits)")
        out.add(word)
    return frozenset(out)


def dr_write_target(obj: Context, repo: Repository, policy: str, tags: list[str]) -> Repository:
    """Where ``run`` writes a policy's backup: the primary in force of a DR plan stored here that
    covers it (a failover moved it), else ``repo``. When the plan's sites cannot tell, ``repo``
    is kept and the engine refuses it if its own failover records say it is not the primary."""
    from snapvault.repository import layout

    if not repo.list_keys(layout.DR_PLANS):
        return repo  # no plan: nothing to import or open
    from snapvault.dr.model import covers
    from snapvault.dr.plan import DRPlan
    from snapvault.errors import SnapvaultError

    for plan in DRPlan.stored(repo).values():
        if not covers(plan, policy, tags):
            continue
        bound = plan.bind(env=os.environ, max_kdf_memory_kib=obj.max_kdf_memory_kib)
        try:
            primary = bound.primary_repository(datetime.now(UTC))
        except SnapvaultError:
            return repo
        if primary.config.repository_id != repo.config.repository_id:
            output.note(f"DR plan {plan.name!r}: policy {policy!r} is written to its primary in force, {primary.url}")
            return primary
        return repo
    return repo
