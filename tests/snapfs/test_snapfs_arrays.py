"""zarr and xarray read array stores out of a snapshot through snapvault:// (as the README
promises), the values equal to what was backed up and not to the files changed since."""

from __future__ import annotations

from pathlib import Path

import pytest

import snapvault as sv
from tests.conftest import FAST_KDF, PASSWORD
from tests.snapfs.test_snapfs import ref_path

np = pytest.importorskip("numpy", reason="numpy is not installed in the test environment")


@pytest.fixture
def arrays(tmp_path: Path) -> tuple[str, Path, object]:
    zarr = pytest.importorskip("zarr", reason="zarr is not installed in the test environment")
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    src = tmp_path / "src"
    src.mkdir()
    values = np.arange(200 * 300, dtype="float64").reshape(200, 300) / 7
    z = zarr.open_array(str(src / "grid.zarr"), mode="w", shape=values.shape, chunks=(50, 100), dtype="float64")
    z[:] = values
    sv.Engine(repo).backup([src])
    # Changed on disk after the backup: reads must come from the snapshot, not from here.
    z[:] = 0
    return url, src, values


def test_zarr_reads_an_array_from_a_snapshot(arrays: tuple[str, Path, object]) -> None:
    zarr = pytest.importorskip("zarr")
    url, src, values = arrays
    opts = {"repo": url, "password": PASSWORD}
    z = zarr.open_array(f"snapvault://{ref_path(src, 'grid.zarr')}", mode="r", storage_options=opts)
    assert z.shape == (200, 300)
    np.testing.assert_array_equal(z[:], values)
    np.testing.assert_array_equal(z[60:70, 150:160], np.asarray(values)[60:70, 150:160])
    with pytest.raises(ValueError, match="read-only"):
        z[0, 0] = 1.0


def test_xarray_opens_a_zarr_dataset_from_a_snapshot(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray", reason="xarray is not installed in the test environment")
    pytest.importorskip("zarr", reason="zarr is not installed in the test environment")
    url = str(tmp_path / "repo")
    repo = sv.Repository.init(url, PASSWORD, kdf=FAST_KDF)
    src = tmp_path / "src"
    src.mkdir()
    ds = xr.Dataset(
        {"t": (("time", "x"), np.linspace(0, 1, 24 * 10).reshape(24, 10))},
        coords={"time": np.arange(24), "x": np.arange(10) * 0.5},
    )
    ds.to_zarr(src / "weather.zarr", mode="w", consolidated=False)
    sv.Engine(repo).backup([src])
    got = xr.open_zarr(
        f"snapvault://{ref_path(src, 'weather.zarr')}",
        storage_options={"repo": url, "password": PASSWORD},
        consolidated=False,
    )
    xr.testing.assert_identical(got.load(), ds)
