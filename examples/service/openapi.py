"""``python -m examples.service.openapi [--check]``: write (or check) ``openapi.json``.

The document is generated from the application itself (:func:`openapi_document`), serving
a throwaway in-memory repository: the routes do not depend on which repository is served.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import fsspec
from examples.service.app import create_app
from examples.service.config import RepositorySettings, Settings

import snapvault as sv

PATH = Path(__file__).resolve().parent / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the service, as committed in ``openapi.json``."""
    url = f"memory://openapi-{uuid.uuid4().hex}"
    repo = sv.Repository.init(url, encryption="none")
    try:
        settings = Settings(repository=RepositorySettings(url=url))
        doc: dict[str, Any] = create_app(settings, repository=repo).openapi()
    finally:
        fsspec.filesystem("memory").rm(url, recursive=True)
    return doc


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.service.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if openapi.json is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = PATH.read_text(encoding="utf-8") if PATH.exists() else ""
        if current != text:
            print(f"{PATH.name} is not current: run python -m examples.service.openapi", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text, encoding="utf-8")
    print(f"wrote {PATH.name} (snapvault {sv.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
