"""Settings: the example file validates, the entry points' variables override it, bad files are
one-line errors, and ``create_app`` opens the repository with the password file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from examples.service.app import create_app
from examples.service.auth import hash_token
from examples.service.config import ConfigFileError, Settings, load_settings, settings_from_env

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.service.conftest import in_process

pytestmark = pytest.mark.anyio
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "service" / "config.example.toml"


def test_the_example_configuration_validates_with_paths_relative_to_it(tmp_path: Path) -> None:
    copy = tmp_path / "conf" / "service.toml"
    copy.parent.mkdir()
    shutil.copy(EXAMPLE, copy)
    s = load_settings(copy)
    assert s.repository.url == str(tmp_path / "conf" / "vault")
    assert s.repository.password_file == tmp_path / "conf" / "vault.password"
    assert s.restore_roots == {"restores": tmp_path / "conf" / "restores"}
    assert s.auth.tokens == []
    assert (s.jobs.max_active, s.auth.max_failures, s.auth.window_s) == (32, 10, 60)
    env = {
        "SNAPVAULT_SERVICE_CONFIG": str(copy),
        "SNAPVAULT_SERVICE_REPOSITORY": "memory://elsewhere",
        "SNAPVAULT_SERVICE_PASSWORD_FILE": "/run/secrets/pw",
    }
    over = settings_from_env(env)
    assert over.repository.url == "memory://elsewhere"
    assert load_settings(copy, overrides={"url": "s3://bucket/vault"}).repository.url == "s3://bucket/vault"
    assert over.repository.password_file == Path("/run/secrets/pw")
    assert over.restore_roots == s.restore_roots


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[repository\n", "cannot read configuration"),
        ('[repository]\nurl = ""\n', "repository.url"),
        ('[repository]\nurl = "x"\nunknown = 1\n', "repository.unknown"),
        ('[repository]\nurl = "x"\n[[auth.tokens]]\nname = "a"\nrole = "root"\nhash = "sha256:00"\n', "auth.tokens"),
        ('[repository]\nurl = "x"\n[jobs]\nmax_active = 0\n', "jobs.max_active"),
        ('[repository]\nurl = "x"\n[restore_roots]\n"a/b" = "/srv"\n', "restore_roots"),
    ],
)
def test_a_bad_configuration_is_one_error_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=message):
        load_settings(path)


def test_settings_from_env_needs_the_config_variable_and_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="SNAPVAULT_SERVICE_CONFIG"):
        settings_from_env({})
    with pytest.raises(ConfigFileError, match="cannot read"):
        settings_from_env({"SNAPVAULT_SERVICE_CONFIG": str(tmp_path / "missing.toml")})


def test_duplicate_token_hashes_are_refused() -> None:
    entry = {"name": "a", "role": "viewer", "hash": hash_token("t")}
    with pytest.raises(ValueError, match="unique"):
        Settings.model_validate({"repository": {"url": "x"}, "auth": {"tokens": [entry, {**entry, "name": "b"}]}})


async def test_create_app_opens_the_repository_with_its_password_file(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    token = "svt_test-token"
    conf = tmp_path / "service.toml"
    conf.write_text(
        f'[repository]\nurl = "{url}"\npassword_file = "pw"\nappend_only = true\n'
        f'[[auth.tokens]]\nname = "a"\nrole = "admin"\nhash = "{hash_token(token)}"\n'
    )
    app = create_app(load_settings(conf))
    c = in_process(app)
    assert (await c.get("/snapshots", headers={"Authorization": f"Bearer {token}"})).json() == []
    # Append-only: a deletion is refused by the library, as a problem.
    sv.Engine(sv.Repository.open(url, PASSWORD)).backup([str(tmp_path / "pw")])
    r = await c.delete("/snapshots/latest", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 409
    assert r.json()["type"] == "urn:snapvault:problem:append-only"
    (tmp_path / "pw").write_text("wrong\n")
    with pytest.raises(sv.WrongPassword):
        create_app(load_settings(conf))
