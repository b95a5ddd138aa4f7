"""A config swapped to unencrypted, met through the command line (issue #17): with a password
given, or without the explicit flag, the CLI refuses and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.test_main import PASSWORD, assert_one_line_error, run
from tests.conftest import write


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def encrypted(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    assert run("-r", str(root), "init").returncode == 0
    return root


def _downgrade(encrypted: Path, tmp_path: Path) -> None:
    """Replace the config and key files with an unencrypted repository's, as someone who can
    write the storage (but knows no password) could."""
    plain = tmp_path / "attacker"
    assert run("-r", str(plain), "init", "--no-encryption", password=None).returncode == 0
    shutil.rmtree(encrypted / "keys")
    shutil.copytree(plain / "keys", encrypted / "keys")
    shutil.copyfile(plain / "config", encrypted / "config")
    assert json.loads((encrypted / "config").read_bytes())["encryption"] == "none"


@pytest.mark.parametrize("how", ["env", "env-file", "password-file"])
def test_a_config_swapped_to_unencrypted_is_refused_when_a_password_is_given(
    encrypted: Path, tmp_path: Path, how: str
) -> None:
    _downgrade(encrypted, tmp_path)
    before = _files(encrypted)
    src = write(tmp_path / "src" / "secret.txt", "the plaintext must not reach the storage").parent
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    if how == "env":
        proc = run("-r", str(encrypted), "backup", str(src))
    elif how == "env-file":
        proc = run("-r", str(encrypted), "backup", str(src), env={"SNAPVAULT_PASSWORD_FILE": str(pw)}, password=None)
    else:
        proc = run("-r", str(encrypted), "--password-file", str(pw), "backup", str(src), password=None)
    line = assert_one_line_error(proc)
    assert "NOT encrypted" in line
    assert _files(encrypted) == before  # nothing written


def test_an_unencrypted_repository_needs_the_explicit_flag(tmp_path: Path) -> None:
    url = str(tmp_path / "plain")
    assert run("-r", url, "init", "--no-encryption", password=None).returncode == 0
    src = write(tmp_path / "src" / "f", "x").parent
    # Without the flag (even with no password at all) the CLI does not use it.
    line = assert_one_line_error(run("-r", url, "backup", str(src), password=None))
    assert "--insecure-no-password" in line
    assert run("-r", url, "--insecure-no-password", "backup", str(src), password=None).returncode == 0
    # The flag on an encrypted repository is refused, never a silent fallback.
    enc = str(tmp_path / "enc")
    assert run("-r", enc, "init").returncode == 0
    assert "encrypted" in assert_one_line_error(run("-r", enc, "--insecure-no-password", "snapshots"))
