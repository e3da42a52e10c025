"""A model path that is not a regular file — a FIFO, a directory, a device — is refused
promptly with an error naming the path, by ``load_model`` and by the Polars plugin (a FIFO
used to block the reader forever)."""

from __future__ import annotations

import os
import threading

import mle_runtime as mle
import pytest

pl = pytest.importorskip("polars")
from mle_runtime.polars import predict  # noqa: E402
from polars.exceptions import ComputeError  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (Unix)")


@pytest.fixture
def paths(tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    directory = tmp_path / "model_dir.mle"
    directory.mkdir()
    return [(str(fifo), "is a FIFO"), (str(directory), "is a directory"),
            ("/dev/null", "is a character device")]


def _promptly(f):
    """The exception `f` raises; fails the test if `f` has not returned within 10 s."""
    box = {}

    def run():
        try:
            f()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "the call hung instead of refusing a non-regular file"
    assert "error" in box, "the call succeeded on a non-regular file"
    return box["error"]


def test_load_model_refuses_fifo_directory_and_device(paths):
    for path, what in paths:
        e = _promptly(lambda p=path: mle.load_model(p))
        assert isinstance(e, mle.ModelFileError), repr(e)
        assert path in str(e) and what in str(e), str(e)


def test_polars_plugin_refuses_fifo_directory_and_device(paths):
    df = pl.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    for path, what in paths:
        e = _promptly(lambda p=path: df.select(predict(p, "a", "b")))
        assert isinstance(e, ComputeError), repr(e)
        assert path in str(e) and what in str(e), str(e)
