"""examples/notebook_restore.ipynb runs top to bottom in a fresh kernel and shows what it says.

The notebook checks its own results with ``assert`` cells, so a run without error already means
its reads, listings and restore were right; these tests add what a reader sees: the values it
prints, the plot, the progress bar, and that it runs on this interpreter and leaves nothing
behind in its working directory.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed in the test environment")
pytest.importorskip("ipykernel", reason="ipykernel is not installed in the test environment")
import nbformat  # noqa: E402 - a dependency of nbclient, so present once nbclient is

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook_restore.ipynb"
# Appended to the executed copy only: the kernel names the interpreter it runs on.
PREFIX_CELL = "import sys\nprint('kernel prefix:', sys.prefix)"


class Run:
    """One execution of the notebook: its cells with outputs, its working directory and the
    kernel's temporary directory (``TMPDIR``)."""

    def __init__(self, nb: Any, cwd: Path, tmp: Path) -> None:
        self.nb = nb
        self.cwd = cwd
        self.tmp = tmp

    def streams(self, name: str) -> str:
        """All text the cells wrote to ``stdout`` or ``stderr``, in order."""
        return "".join(
            o.text for c in self.nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == name
        )

    def data(self, mime: str) -> list[str]:
        """Every rich output of one MIME type (display data and cell results)."""
        return [
            o.data[mime] for c in self.nb.cells if c.cell_type == "code" for o in c.outputs if mime in o.get("data", {})
        ]

    def line(self, pattern: str) -> re.Match[str]:
        """The one printed line that matches ``pattern`` in full."""
        found = [m for line in self.streams("stdout").splitlines() if (m := re.fullmatch(pattern, line))]
        assert len(found) == 1, (pattern, self.streams("stdout"))
        return found[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PREFIX_CELL))
    cwd = tmp_path_factory.mktemp("notebook-cwd")
    tmp = tmp_path_factory.mktemp("notebook-tmp")
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    # A failing cell (an assert in the notebook) raises CellExecutionError. The kernel gets a
    # TMPDIR of its own, so what the notebook leaves in its temporary folder can be seen.
    client.execute(env={**os.environ, "TMPDIR": str(tmp)})
    return Run(nb, cwd, tmp)


def test_the_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"


def test_the_kernel_runs_on_the_test_interpreter(run: Run) -> None:
    assert run.line(r"kernel prefix: (.*)").group(1) == sys.prefix


def test_last_weeks_csv_is_read_as_it_was_a_week_ago(run: Run) -> None:
    week_ago = datetime.fromisoformat(run.line(r"week ago: (\S+)").group(1)).date()
    rows = r"(\d+) rows, (\d{4}-\d\d-\d\d) to (\d{4}-\d\d-\d\d), (\d+) units"
    old = run.line(rf"last week's daily\.csv: {rows}")
    new = run.line(rf"today's daily\.csv: {rows}")
    old_first, old_last = date.fromisoformat(old.group(2)), date.fromisoformat(old.group(3))
    new_first, new_last = date.fromisoformat(new.group(2)), date.fromisoformat(new.group(3))
    # daily.csv has one row a day: last week's copy ends on the day of a backup made in the
    # week before that time, today's copy ends today.
    assert week_ago - timedelta(days=7) < old_last <= week_ago
    assert new_last == week_ago + timedelta(days=7)
    assert old_first == new_first
    assert int(old.group(1)) == (old_last - old_first).days + 1
    assert int(new.group(1)) == (new_last - new_first).days + 1
    assert int(old.group(4)) < int(new.group(4))


def test_the_catalog_gives_one_files_history(run: Run) -> None:
    backups = int(run.line(r"repository: \d+ bytes stored by (\d+) backups, \d+ bytes on disk").group(1))
    count, first, last = map(int, run.line(r"daily\.csv in (\d+) snapshots, (\d+) to (\d+) bytes").groups())
    assert count == backups
    assert 0 < first < last


def test_the_growth_plot_is_drawn_from_the_stored_bytes(run: Run) -> None:
    pngs = run.data("image/png")
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]).startswith(b"\x89PNG\r\n\x1a\n")
    stored, backups, on_disk = map(
        int, run.line(r"repository: (\d+) bytes stored by (\d+) backups, (\d+) bytes on disk").groups()
    )
    assert backups >= 5
    assert 0 < stored <= on_disk


def test_the_restore_draws_a_tqdm_bar_and_matches_the_source(run: Run) -> None:
    files, nbytes = map(int, run.line(r"restored (\d+) files, (\d+) bytes").groups())
    assert files > 1
    assert nbytes > 0
    assert run.line(r"(\d+) restored files match the source byte for byte").group(1) == str(files)
    bar = run.streams("stderr")
    assert re.search(r"restore raw/: 100%\|[^|]*\| \S+/\S+ \[", bar), bar


def test_the_notebook_writes_nothing_into_its_working_directory(run: Run) -> None:
    assert list(run.cwd.iterdir()) == []


def test_the_notebook_removes_its_temporary_folder(run: Run) -> None:
    assert not [p for p in run.tmp.iterdir() if p.name.startswith("snapvault-notebook-")]
