"""Sphinx configuration of the snapvault documentation site.

``nox -s docs`` builds it with warnings as errors (``sphinx-build -W --keep-going -b html docs
docs/_build/html``); ``tests/test_docs_site.py`` builds it in every test run. Pages are Markdown
(MyST); the API reference pulls the numpydoc docstrings of the names in ``snapvault.__all__``
through autodoc and napoleon.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util.inspect import stringify_signature

import snapvault

# Import every public name now, before autodoc runs. Sphinx 9's autodoc writes the annotations
# it parses from pydantic's own source back onto ``BaseModel`` when it documents a model's
# attributes (sphinx-doc/sphinx#14337); a model with ``extra="allow"`` defined after that fails
# to build its schema, so every model must exist before the first page is read.
for _name in snapvault.__all__:
    getattr(snapvault, _name)

project = "snapvault"
author = "the snapvault authors"
copyright = "the snapvault authors"
release = snapvault.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: ``:::`` fences for admonitions, and anchors on headings (down to ###) so that a link
# such as ``format.md#trees`` finds its section.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# The docstrings are numpydoc; napoleon turns their sections into Sphinx fields.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
# Bases are shown on the errors page only, where they say what a caller may catch.
autodoc_default_options: dict[str, bool] = {}

html_theme = "alabaster"
html_title = f"snapvault {release}"
html_theme_options = {"description": "Deduplicated, encrypted backups into any fsspec filesystem"}
html_static_path: list[str] = []

# README.md is the user guide (guide.md includes it). Its links to docs/*.md become links
# between pages (the include's ``relative-docs``); a link to another file of the repository
# (an example script or notebook) has no page here, so it points to the page about that file
# when there is one, and is plain text otherwise. Only links outside code blocks are touched.
_README_PAGES = {"examples/notebook_restore.ipynb": "docs/howto/notebook-restore.md"}
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_KEEP = ("http://", "https://", "mailto:", "#", "docs/")


def _readme_link(match: re.Match[str]) -> str:
    text, target = match.groups()
    if target.startswith(_KEEP):
        return match.group(0)
    page = _README_PAGES.get(target.split("#", 1)[0])
    return f"[{text}]({page})" if page else text


def _readme_links(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    if relative_path.name != "README.md":
        return
    lines, fenced = [], False
    for line in content[0].splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        lines.append(line if fenced else _LINK.sub(_readme_link, line))
    content[0] = "".join(lines)


# numpydoc lets one entry of an Attributes section name several attributes that share a type
# ("files, dirs, symlinks : int"); napoleon splits such entries under Parameters only, and
# would render the first names as the type. Give each name its own entry before it runs.
_RULE = re.compile(r"^-{3,}$")
_NAMES = re.compile(r"^([A-Za-z_]\w*(?:, [A-Za-z_]\w*)+)(\s*:.*)?$")


def _split_attribute_entries(app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]) -> None:
    out: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() and i + 1 < len(lines) and _RULE.match(lines[i + 1]):
            section = line.strip()
            out += lines[i : i + 2]
            i += 2
            continue
        names = _NAMES.match(line) if section == "Attributes" else None
        if names is None:
            out.append(line)
            i += 1
            continue
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
            end += 1
        for attribute in names.group(1).split(", "):
            out += [attribute + (names.group(2) or ""), *lines[i + 1 : end]]
        i = end
    lines[:] = out


# pydantic's own members of a model (its configuration, and the methods it generates) are
# documented by pydantic; a method a model overrides with a docstring of its own stays.
_PYDANTIC_ATTRIBUTES = frozenset({"model_config", "model_fields", "model_computed_fields"})


def _skip_pydantic_member(app: Sphinx, what: str, name: str, obj: object, skip: bool, options: object) -> bool | None:
    if name in _PYDANTIC_ATTRIBUTES:
        return True
    module = getattr(getattr(obj, "__func__", obj), "__module__", None) or ""
    return True if name.startswith("model_") and module.startswith("pydantic") else None


def _init_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """A class whose metaclass hides its signature behind ``__call__(*args, **kwargs)`` (an
    fsspec filesystem's instance cache) is shown with its ``__init__``'s parameters."""
    if what != "class" or signature != "(*args, **kwargs)" or "__init__" not in vars(obj):
        return None
    init = vars(obj)["__init__"]
    try:
        sig = inspect.signature(init, eval_str=True)
    except NameError:  # an annotation only a type checker can resolve
        sig = inspect.signature(init)
    parameters = list(sig.parameters.values())[1:]  # without self
    return stringify_signature(sig.replace(parameters=parameters), show_return_annotation=False), None


def setup(app: Sphinx) -> None:
    app.connect("include-read", _readme_links)
    # Before napoleon (priority 500), which turns the sections into fields.
    app.connect("autodoc-process-docstring", _split_attribute_entries, priority=400)
    app.connect("autodoc-skip-member", _skip_pydantic_member)
    app.connect("autodoc-process-signature", _init_signature)
