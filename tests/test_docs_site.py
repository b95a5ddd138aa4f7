"""The documentation site builds with warnings as errors, and documents the public API.

The site is built once per module, as ``nox -s docs`` builds it (``-W --keep-going -b html``),
in a child process: autodoc imports every public module and writes annotations back onto the
classes it documents (pydantic's ``BaseModel`` among them), which must not leak into the other
tests of this worker.
"""

from __future__ import annotations

import html
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs extra (Sphinx) is not installed")
pytest.importorskip("myst_parser", reason="the docs extra (myst-parser) is not installed")

from sphinx.util.inventory import InventoryFile  # only once Sphinx is known to be there

import snapvault

DOCS = Path(__file__).resolve().parent.parent / "docs"
# The pages written for the site, beside the Markdown documents that predate it.
SITE_PAGES = [
    "index",
    "tutorial",
    "guide",
    "howto/cron-systemd",
    "howto/object-storage",
    "howto/notebook-restore",
    "howto/dr",
    "reference/index",
    "reference/repository",
    "reference/backup",
    "reference/restore",
    "reference/maintenance",
    "reference/policy",
    "reference/snapfs",
    "reference/dr",
    "reference/codecs",
    "reference/errors",
]


def build(source: Path, out: Path, builder: str = "html") -> subprocess.CompletedProcess[str]:
    """``sphinx-build -W --keep-going`` of ``source`` into ``out``, in a child process."""
    args = ["-W", "--keep-going", "-b", builder, "-q", "-d", str(out / ".doctrees"), str(source), str(out)]
    return subprocess.run(
        [sys.executable, "-m", "sphinx", *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(DOCS, out)
    assert done.returncode == 0, f"the docs build failed or warned:\n{done.stderr}"
    return out


@pytest.fixture(scope="module")
def inventory(site: Path) -> dict[str, dict[str, object]]:
    with open(site / "objects.inv", "rb") as f:
        # {"py:class": {"snapvault.Repository": (project, version, uri, display name), ...}, ...}
        return {kind: dict(entries) for kind, entries in InventoryFile.load(f, "", lambda base, uri: uri).items()}


def documented(inventory: dict[str, dict[str, object]], *kinds: str) -> set[str]:
    return {name for kind in kinds for name in inventory.get(kind, {})}


def variables(site: Path, inventory: dict[str, dict[str, object]]) -> set[str]:
    """``snapvault.Class.name`` for each attribute a class's docstring lists (its Attributes
    section, which the pages show as the class's "Variables")."""
    classes = documented(inventory, "py:class", "py:exception")
    found = set()
    for page in sorted((site / "reference").glob("*.html")):
        text = page.read_text(encoding="utf-8")
        anchors = [(m.start(), m.group(1)) for m in re.finditer(r'id="(snapvault\.[\w.]+)"', text)]
        for i, (start, name) in enumerate(anchors):
            if name not in classes:
                continue
            end = next((pos for pos, other in anchors[i + 1 :] if not other.startswith(name + ".")), len(text))
            block = text[start:end]
            for field in re.findall(r">Variables<.*?</dd>", block, flags=re.S):
                found |= {f"{name}.{attr}" for attr in re.findall(r"<strong>(\w+)</strong>", field)}
    return found


def test_every_markdown_document_is_a_page_of_the_site(site: Path) -> None:
    sources = sorted(p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md"))
    assert set(SITE_PAGES) <= set(sources)
    for name in sources:
        page = site / f"{name}.html"
        assert page.is_file(), f"docs/{name}.md is not built into the site"
    # Each is reachable from the table of contents: Sphinx would warn (and fail) otherwise,
    # and the pages that predate the site are listed on the front page itself.
    front = (site / "index.html").read_text(encoding="utf-8")
    for name in ("format", "design", "api", "backends", "benchmarks", "comparison", "decisions", "dr"):
        assert f'href="{name}.html"' in front, name


def test_every_public_name_has_a_reference_entry(inventory: dict[str, dict[str, object]]) -> None:
    objects = documented(inventory, "py:class", "py:exception", "py:function", "py:data")
    modules = documented(inventory, "py:module")
    for name in snapvault.__all__:
        value = getattr(snapvault, name)
        if isinstance(value, type(snapvault)):
            assert f"snapvault.{name}" in modules, name
        else:
            assert f"snapvault.{name}" in objects, name


def test_the_reference_documents_every_method_the_api_page_names(
    site: Path, inventory: dict[str, dict[str, object]]
) -> None:
    # docs/api.md names the methods users call (`Repository.forget(...)`, `Engine.backup`);
    # pydantic's own (`model_json_schema`) are documented by pydantic.
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    named = {
        f"snapvault.{cls}.{member}"
        for cls, member in re.findall(r"\b([A-Z][A-Za-z]+)\.([a-z][a-z_]*)\b", api)
        if cls in snapvault.__all__ and not member.startswith("model_")
    }
    assert {"snapvault.Repository.forget", "snapvault.Engine.backup", "snapvault.Restorer.restore"} <= named
    members = documented(inventory, "py:method", "py:property", "py:attribute") | variables(site, inventory)
    assert sorted(named - members) == []
    # The basics that every user calls, named on other pages.
    for name in ("Repository.open", "Repository.init", "Repository.snapshots", "Repository.resolve"):
        assert f"snapvault.{name}" in members, name
    functions = documented(inventory, "py:function", "py:class")
    for name in ("retention.GFS", "retention.KeepLast", "cron.next_runs", "cron.validate"):
        assert f"snapvault.{name}" in functions, name


def test_the_guide_is_the_readme_with_links_between_pages(site: Path) -> None:
    guide = (site / "guide.html").read_text(encoding="utf-8")
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    headings = [line[3:] for line in readme.splitlines() if line.startswith("## ") and "`" not in line]
    assert headings
    for heading in headings:
        assert f"<h2>{html.escape(heading, quote=False)}<" in guide, heading
    # README links to docs/format.md; on the site that is the page next to the guide.
    assert 'href="format.html"' in guide
    assert 'href="docs/format.md"' not in guide


def snapvault_commands(page: Path) -> list[tuple[str, list[str]]]:
    """Each ``snapvault ...`` line of a page's bash blocks (continuations joined), as
    (line, arguments after the program name); ``VAR=value`` prefixes are dropped."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.match(r"[A-Za-z_]\w*=", words[0]):
                words.pop(0)
            if words and Path(words[0]).name == "snapvault":
                found.append((line.strip(), words[1:]))
    return found


def test_every_command_on_the_pages_names_real_commands_and_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from snapvault.cli.main import run

    for name in ("SNAPVAULT_REPOSITORY", "SNAPVAULT_OPTIONS_FILE", "SNAPVAULT_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    # The root options are processed before a subcommand's --help: its options file is read.
    options = tmp_path / "options.json"
    options.write_text("{}", encoding="utf-8")
    assert run(["backup", "x", "--no-such-option", "--help"]) == 2  # what a wrong command gives
    capsys.readouterr()
    pages = [DOCS / "tutorial.md", *sorted((DOCS / "howto").glob("*.md"))]
    checked = 0
    for page in pages:
        for line, args in snapvault_commands(page):
            previous = ["", *args[:-1]]
            argv = [str(options) if p == "--options-file" else a for p, a in zip(previous, args, strict=True)]
            # --help after the arguments: click rejects an unknown command or option while it
            # parses them, then prints the help of the command they name instead of running it.
            code = run([*argv, "--help"])
            err = capsys.readouterr().err
            assert code == 0, f"{page.name}: {line}\n{err}"
            checked += 1
    assert checked >= 30


def test_a_warning_fails_the_build(tmp_path: Path) -> None:
    # The site's own configuration, over one page with a broken reference: nothing in conf.py
    # may hide such a warning from -W.
    source = tmp_path / "docs"
    source.mkdir()
    shutil.copy(DOCS / "conf.py", source)
    (source / "index.md").write_text("# A page\n\nSee {doc}`no-such-page`.\n", encoding="utf-8")
    done = build(source, tmp_path / "out", builder="dummy")
    assert done.returncode != 0
    assert "no-such-page" in done.stderr
