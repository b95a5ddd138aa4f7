"""``codec_from_spec``: the one parser of ``none``, ``zstd`` and ``zstd:LEVEL``, for options and policies."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snapvault as sv
from snapvault.cli.main import run
from snapvault.errors import ConfigError
from snapvault.pipeline.codecs import Codec, NoCompression, Zstd, codec_from_spec

LEVELS = [*range(-7, 0), *range(1, 23)]
FORMS = "'none', 'zstd' or 'zstd:LEVEL'"


def test_the_documented_forms() -> None:
    assert codec_from_spec("none") == NoCompression()
    assert codec_from_spec("zstd") == Zstd(3)
    assert codec_from_spec("zstd:19") == Zstd(19)
    assert codec_from_spec("zstd:-7") == Zstd(-7)
    # An empty level has always meant the default; a stored policy may say it.
    assert codec_from_spec("zstd:") == Zstd(3)


@given(level=st.sampled_from(LEVELS))
def test_every_valid_level_parses_to_that_level(level: int) -> None:
    assert codec_from_spec(f"zstd:{level}") == Zstd(level)
    assert codec_from_spec(f"zstd:{level:+d}") == Zstd(level)


@given(level=st.integers().filter(lambda n: n not in LEVELS))
def test_an_out_of_range_level_is_a_config_error_naming_the_forms(level: int) -> None:
    with pytest.raises(ConfigError, match=r"\[-7, -1\] or \[1, 22\]") as exc:
        codec_from_spec(f"zstd:{level}")
    assert FORMS in str(exc.value)


@given(codec=st.one_of(st.just(NoCompression()), st.sampled_from(LEVELS).map(Zstd)))
def test_a_codec_round_trips_through_its_spec(codec: Codec) -> None:
    d = codec.to_dict()
    spec = d["codec"] if "level" not in d else f"{d['codec']}:{d['level']}"
    assert codec_from_spec(spec) == codec


@pytest.mark.parametrize(
    "spec",
    ["", "lz4", "ZSTD", "Zstd:3", "zstd3", "zstdx:3", "none:0", "none:", "zstd:3:4", "zstd: 3", "zstd:3 ", "zstd:3_0",
     "zstd:x", "zstd:3.0", "zstd:\u0663", " zstd", ":3"],
)  # fmt: skip
def test_other_forms_are_config_errors_naming_the_accepted_ones(spec: str) -> None:
    with pytest.raises(ConfigError) as exc:
        codec_from_spec(spec)
    assert FORMS in str(exc.value)
    assert repr(spec) in str(exc.value)


@settings(max_examples=300)
@given(spec=st.one_of(st.text(max_size=12), st.text(max_size=8).map(lambda t: "zstd:" + t)))
def test_any_text_gives_a_codec_or_a_config_error(spec: str) -> None:
    try:
        codec = codec_from_spec(spec)
    except ConfigError:
        return
    assert isinstance(codec, (NoCompression, Zstd))


# -- the parsers this one replaced agree with it on every form they documented -----------------


def _old_policy_parser(value: str) -> Codec:
    """``parse_compression`` as policy/model.py had it."""
    if value == "none":
        return NoCompression()
    name, _, level = value.partition(":")
    if name != "zstd":
        raise ConfigError(f"compression must be 'none', 'zstd' or 'zstd:LEVEL', not {value!r}")
    try:
        number = int(level) if level else 3
    except ValueError:
        raise ConfigError(f"compression level must be an integer, not {level!r}") from None
    return Zstd(number)


def _old_cli_parser(compression: str) -> Codec:
    """``init --compression`` as the CLI had it (its failures were a CLI error, here ConfigError)."""
    if compression == "none":
        return NoCompression()
    if compression.startswith("zstd"):
        _, _, level = compression.partition(":")
        try:
            return Zstd(int(level or 3))
        except ValueError:
            raise ConfigError(f"bad compression {compression!r}") from None
    raise ConfigError(f"bad compression {compression!r}")


def _outcome(parse: object, spec: str) -> Codec | type[ConfigError]:
    try:
        return parse(spec)  # type: ignore[operator, no-any-return]
    except ConfigError:
        return ConfigError


documented = st.one_of(
    st.sampled_from(["none", "zstd", "zstd:"]),
    st.integers(-100, 100).map(lambda n: f"zstd:{n}"),
    st.sampled_from(["lz4", "", "ZSTD", "none:3", "gzip:9"]),
)


@settings(max_examples=300)
@given(spec=documented)
def test_old_policy_and_cli_parsers_give_identical_codecs(spec: str) -> None:
    new = _outcome(codec_from_spec, spec)
    assert _outcome(_old_policy_parser, spec) == new
    assert _outcome(_old_cli_parser, spec) == new


@pytest.mark.parametrize("spec", ["none", "zstd", "zstd:1", "zstd:19", "zstd:-3"])
def test_a_policy_asks_for_the_codec_of_its_spec(spec: str) -> None:
    policy = sv.Policy(name="p", sources=["/src"], compression=spec)
    assert policy.codec == codec_from_spec(spec)
    assert sv.Policy.model_validate_json(policy.to_json()).codec == codec_from_spec(spec)


@pytest.mark.parametrize("spec", ["lz4", "zstd:99", "zstd:x"])
def test_a_policy_with_a_bad_spec_is_a_config_error_naming_the_forms(spec: str) -> None:
    with pytest.raises(ConfigError, match="compression") as exc:
        sv.Policy(name="p", sources=["/src"], compression=spec)
    assert FORMS in str(exc.value)


@pytest.mark.parametrize("spec", ["none", "zstd", "zstd:1", "zstd:19", "zstd:-3"])
def test_cli_init_stores_the_codec_of_its_spec(spec: str, tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    assert run(["-r", url, "init", "--no-encryption", "--compression", spec]) == 0
    assert sv.Repository.open(url).config.compression == codec_from_spec(spec)


@pytest.mark.parametrize("spec", ["lz4", "zstd:99", "zstdx"])
def test_cli_init_refuses_a_bad_spec_before_creating_anything(
    spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = tmp_path / "repo"
    assert run(["-r", str(url), "init", "--no-encryption", "--compression", spec]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("snapvault: error: ")
    assert FORMS in err
    assert not url.exists()
