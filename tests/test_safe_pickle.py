"""The allow-list unpickler: what official dataset and benchmark pickles need loads, code does not run."""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from lightning_nas import safe_pickle
from lightning_nas.errors import DatasetError


class _RunsCode:
    """A payload whose unpickling would call ``os.system``: what a tampered download can hold."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _numpy1_pickle(obj) -> bytes:
    """Pickle ``obj`` as numpy 1 did: the module ``numpy.core.multiarray`` instead of ``numpy._core``."""
    data = pickle.dumps(obj, protocol=2)
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def test_arrays_scalars_and_containers_load(tmp_path):
    value = OrderedDict(data=np.arange(12, dtype=np.uint8).reshape(3, 4), acc=np.float64(93.25),
                        labels=[1, 2, 3], names={"a", "b"})
    path = tmp_path / "record.pkl"
    path.write_bytes(_numpy1_pickle(value))
    assert b"numpy.core.multiarray" in path.read_bytes()  # the numpy 1 name is really what is read
    loaded = safe_pickle.load(path)
    assert isinstance(loaded, OrderedDict) and list(loaded) == list(value)
    np.testing.assert_array_equal(loaded["data"], value["data"])
    assert loaded["acc"] == 93.25 and isinstance(loaded["acc"], np.float64)
    assert loaded["labels"] == [1, 2, 3] and loaded["names"] == {"a", "b"}


def test_code_is_refused_before_it_runs(tmp_path, capfd):
    path = tmp_path / "tampered.pkl"
    path.write_bytes(pickle.dumps({"data": _RunsCode()}))
    with pytest.raises(safe_pickle.UnsafePickleError) as error:
        safe_pickle.load(path)
    message = str(error.value)
    assert str(path) in message and "system" in message and "\n" not in message
    assert "pwned" not in capfd.readouterr().out


@pytest.mark.parametrize("content", [b"", b"\x80\x02}q\x00(X\x04\x00", b"not a pickle at all"])
def test_truncated_or_foreign_file_is_one_line(tmp_path, content):
    path = tmp_path / "broken.pkl"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as error:
        safe_pickle.load(path, what="CIFAR-100 python file")
    assert str(path) in str(error.value) and "CIFAR-100 python file" in str(error.value)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        safe_pickle.load(tmp_path / "absent.pkl")
