"""Trust policy of the Python and Polars front ends, four cases each: unsigned, signed by
another key, tampered after signing (every checksum repaired, so only the signature can
notice), correctly signed. A refused file raises a security error naming the file."""

from __future__ import annotations

import struct
import zlib

import mle_runtime as mle
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

N = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sig")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, N))
    model = LinearRegression().fit(X, X @ np.arange(1.0, N + 1) + 0.5)
    secret, public = mle.generate_keypair()
    other_secret, _ = mle.generate_keypair()
    paths = {k: str(d / f"{k}.mle") for k in ("unsigned", "wrong_key", "tampered", "signed")}
    names = [f"f{i}" for i in range(N)]
    mle.export_model(model, paths["unsigned"], feature_names=names)
    mle.export_model(model, paths["wrong_key"], feature_names=names, signing_key=other_secret)
    mle.export_model(model, paths["signed"], feature_names=names, signing_key=secret)
    mle.export_model(model, paths["tampered"], feature_names=names, signing_key=secret)
    _tamper(paths["tampered"])
    return paths, public, model, X, names


def _tamper(path):
    """Flips the lowest bit of the first weight byte, then repairs the weights CRC and the
    header CRC (the signature CRC is untouched)."""
    b = bytearray(open(path, "rb").read())
    off, size = struct.unpack_from("<QQ", b, 24 + 16 * 2)
    assert size > 0
    b[off] ^= 0x01  # lowest mantissa byte of the first weight: a tiny, silent change
    struct.pack_into("<I", b, 88 + 4 * 2, zlib.crc32(bytes(b[off : off + size])))
    struct.pack_into("<I", b, 124, zlib.crc32(bytes(b[:124])))
    open(path, "wb").write(bytes(b))


def test_python_load_model_four_cases(files):
    paths, public, model, X, _ = files
    for case, why in (
        ("unsigned", "not signed"),
        ("wrong_key", "invalid signature"),
        ("tampered", "invalid signature"),
    ):
        with pytest.raises(mle.SecurityError, match=why) as e:
            mle.load_model(paths[case], public_key=public)
        assert f"{case}.mle" in str(e.value), str(e.value)
    rt = mle.load_model(paths["signed"], public_key=public)
    np.testing.assert_allclose(rt.predict(X), model.predict(X), rtol=1e-5, atol=1e-6)
    # Without a policy the tampered file loads: only the signature protects it.
    mle.load_model(paths["tampered"])


def test_python_public_key_as_key_file(files, tmp_path):
    paths, public, _, _, _ = files
    kf = tmp_path / "release.pub"
    kf.write_text(public.hex() + "\n")
    mle.load_model(paths["signed"], public_key=str(kf))
    with pytest.raises(mle.SecurityError, match="tampered.mle"):
        mle.load_model(paths["tampered"], public_key=str(kf))


def test_polars_predict_four_cases(files):
    pl = pytest.importorskip("polars")
    from mle_runtime.polars import predict
    from polars.exceptions import ComputeError

    paths, public, model, X, names = files
    df = pl.DataFrame({n: X[:, i] for i, n in enumerate(names)})
    for case, why in (
        ("unsigned", "the model is not signed"),
        ("wrong_key", "invalid signature"),
        ("tampered", "invalid signature"),
    ):
        with pytest.raises(ComputeError, match=rf"{case}\.mle: {why}"):
            df.select(predict(paths[case], *names, public_key=public))
    out = df.select(predict(paths["signed"], *names, public_key=public))
    np.testing.assert_allclose(out.to_series(0).to_numpy(), model.predict(X), rtol=1e-5, atol=1e-6)
