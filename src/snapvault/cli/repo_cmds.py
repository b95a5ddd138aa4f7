"""CLI commands about a repository as a whole: ``init``, ``copy``, ``check``."""

from __future__ import annotations

import dataclasses

import click

from snapvault.cli import output
from snapvault.cli.common import Context, fail, from_options, open_source
from snapvault.cli.exits import Outcome


@click.command()
@click.option("--no-encryption", is_flag=True, help="Create an UNENCRYPTED repository.")
@click.option("--compression", default="zstd:3", show_default=True, help="'zstd:LEVEL' or 'none'.")
@click.option("--copy-params-from", metavar="SRC", help="Share chunker parameters and content IDs with SRC.")
@from_options
@click.option("--json", "as_json", is_flag=True, help="Print the new repository as JSON.")
@click.pass_obj
def init(
    obj: Context,
    no_encryption: bool,
    compression: str,
    copy_params_from: str | None,
    from_option: tuple[str, ...],
    from_options_file: str | None,
    from_password_file: str | None,
    from_insecure_no_password: bool,
    as_json: bool,
) -> None:
    """Create a new repository."""
    from snapvault import Repository
    from snapvault.pipeline.codecs import codec_from_spec

    # Parsed before any password prompt; a ConfigError names the accepted forms (exit 1).
    codec = codec_from_spec(compression)
    source = None
    if copy_params_from:
        source = open_source(
            copy_params_from,
            from_option,
            from_options_file,
            from_password_file,
            from_insecure_no_password,
            max_kdf_memory_kib=obj.max_kdf_memory_kib,
        )
    if no_encryption:
        repo = Repository.init(
            obj.url(), None, storage_options=obj.options, encryption="none", compression=codec, copy_params_from=source
        )
        output.warning("anyone who can read this storage can read your backups")
    else:
        password = obj.password(confirm=True)
        repo = Repository.init(
            obj.url(), password, storage_options=obj.options, compression=codec, copy_params_from=source
        )
    if as_json:
        doc = {
            "id": repo.config.repository_id,
            "url": repo.url,
            "encrypted": repo.encrypted,
            "params_from": source.url if source is not None else None,
        }
        output.document(doc)
        return
    plain = "" if repo.encrypted else "UNENCRYPTED "
    output.info(f"created {plain}repository {repo.config.repository_id[:8]} at {repo.url}")
    if source is not None:
        output.info(f"chunker parameters and content IDs shared with {source.url}")


@click.command()
@click.argument("snapshots", nargs=-1)
@click.option("--from", "from_url", required=True, metavar="SRC", help="The source repository.")
@from_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def copy(
    obj: Context,
    snapshots: tuple[str, ...],
    from_url: str,
    from_option: tuple[str, ...],
    from_options_file: str | None,
    from_password_file: str | None,
    from_insecure_no_password: bool,
    as_json: bool,
) -> None:
    """Copy SNAPSHOTS (default: all) from --from SRC into this repository.

    Only blobs this repository lacks are uploaded; snapshots already copied are skipped, so an
    interrupted copy resumes and a repeated one transfers nothing.
    """
    from snapvault.cli.progress import bar

    source = open_source(
        from_url,
        from_option,
        from_options_file,
        from_password_file,
        from_insecure_no_password,
        max_kdf_memory_kib=obj.max_kdf_memory_kib,
    )
    dest = obj.open()
    with bar("copy") as b:
        result = source.copy_snapshots(dest, list(snapshots) or None, callback=b)
    if as_json:
        output.document(
            {
                "copied": result.copied,
                "skipped": result.skipped,
                "blobs_uploaded": result.blobs_uploaded,
                "bytes_uploaded": result.bytes_uploaded,
            }
        )
        return
    for src_id, dst_id in result.copied:
        output.info(f"copied snapshot {src_id[:8]} as {dst_id[:8]}")
    for src_id in result.skipped:
        output.detail(f"already present: snapshot {src_id[:8]}")
    output.info(
        f"{len(result.copied)} copied, {len(result.skipped)} already present, "
        f"{result.blobs_uploaded} blobs ({result.bytes_uploaded / 2**20:.1f} MiB) uploaded"
    )


@click.command()
@click.option("--read-data", is_flag=True, help="Decrypt and verify every blob.")
@click.option("--read-data-subset", metavar="N%", help="Verify a random N% of the packs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def check(obj: Context, read_data: bool, read_data_subset: str | None, as_json: bool) -> Outcome:
    """Verify the repository's structure and, optionally, its data."""
    from snapvault.cli.progress import bar

    subset = None
    if read_data_subset is not None:
        if read_data:
            fail("give --read-data or --read-data-subset, not both")
        text = read_data_subset.rstrip("%")
        try:
            subset = float(text) / 100
        except ValueError:
            fail(f"bad --read-data-subset {read_data_subset!r}: use a percentage like 10%")
        if not 0 < subset <= 1:
            fail("--read-data-subset must be within (0%, 100%]")
    repo = obj.open()
    # Packs read: bytes; the structure alone: snapshots.
    with bar("check", "B" if read_data or subset else "snapshot") as b:
        report = repo.check(read_data=read_data, read_data_subset=subset, callback=b)
    for w in report.warnings:
        output.warning(w)
    for p in report.problems:
        # One problem, one line: a parser's message may span several.
        output.error(str(p))
    if as_json:
        # Every field of the report and of each problem, as the library names them.
        output.document({"ok": report.ok, **dataclasses.asdict(report)})
    else:
        for field in dataclasses.fields(report):
            value = getattr(report, field.name)
            if isinstance(value, int):
                output.detail(f"{field.name.replace('_', ' ')}: {value}")
        output.info(
            f"checked {report.snapshots} snapshots, {report.trees} trees, {report.packs} packs"
            + (f", read {report.packs_read} packs / {report.blobs_read} blobs" if report.packs_read else "")
            + (": no problems" if report.ok else f": {len(report.problems)} problems")
        )
    return Outcome.DONE if report.ok else Outcome.DAMAGE_FOUND
