"""tests/support/rootfiles.py: the branches it writes read back through uproot as ROOT's do."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import uproot
from uproot.containers import AsVector
from uproot.interpretation.numerical import AsDtype
from uproot.interpretation.objects import AsObjects, AsStridedObjects

from support.rootfiles import DatimeObjects, LeafList, NestedDoubleVectors, write_tree

RECORD = [("x", "f8"), ("y", "i4"), ("z", "i1"), ("u", "u2"), ("f", "f4"), ("big", "i8")]


def leaf_list(n: int) -> np.ndarray:
    values = np.zeros(n, dtype=RECORD)
    values["x"] = np.linspace(-1.5, 2.5, n)
    values["y"] = np.arange(n) - 3
    values["z"] = np.arange(n, dtype=np.int8) * 7 - 60
    values["u"] = 65000 - np.arange(n)
    values["f"] = 0.25 * np.arange(n)
    values["big"] = 2**40 + np.arange(n)
    return values


def test_a_leaf_list_is_one_branch_of_several_leaves_read_as_a_structured_dtype(
    tmp_path: Path,
) -> None:
    values = leaf_list(7)
    path = write_tree(tmp_path / "ll.root", "tree", {"s": LeafList(values), "w": np.ones(7)})
    tree = uproot.open(path)["tree"]
    assert tree.keys() == ["s", "w"]
    branch = tree["s"]
    assert branch.classname == "TBranch"
    assert branch.title == "x/D:y/I:z/B:u/s:f/F:big/L"
    assert [leaf.classname for leaf in branch.member("fLeaves")] == [
        "TLeafD", "TLeafI", "TLeafB", "TLeafS", "TLeafF", "TLeafL"
    ]  # fmt: skip
    assert [leaf.member("fOffset") for leaf in branch.member("fLeaves")] == [0, 8, 12, 13, 15, 19]
    assert [leaf.member("fName") for leaf in tree.member("fLeaves")] == [*values.dtype.names, "w"]
    interpretation = branch.interpretation
    assert isinstance(interpretation, AsDtype)
    assert interpretation.from_dtype == np.dtype(
        [(n, np.dtype(t).newbyteorder(">")) for n, t in RECORD]
    )
    assert branch.basket(0).data.tobytes() == values.astype(interpretation.from_dtype).tobytes()
    read = branch.array(library="np")
    for name in values.dtype.names:
        np.testing.assert_array_equal(read[name], values[name])
    np.testing.assert_array_equal(tree["w"].array(library="np"), np.ones(7))


def test_a_tdatime_branch_is_a_branch_element_read_as_strided_tdatime_objects(
    tmp_path: Path,
) -> None:
    when = [datetime.datetime(1996, 1, 2, 3, 4, 5), datetime.datetime(2024, 12, 31, 23, 59, 58)]
    path = write_tree(tmp_path / "d.root", "tree", {"d": DatimeObjects(when)})
    branch = uproot.open(path)["tree"]["d"]
    assert branch.classname == "TBranchElement"
    assert branch.member("fClassName") == "TDatime"
    assert [leaf.classname for leaf in branch.member("fLeaves")] == ["TLeafElement"]
    assert isinstance(branch.interpretation, AsStridedObjects)
    assert branch.interpretation.model is uproot.models.TDatime.Model_TDatime
    assert branch.typename == "TDatime"
    assert [d.to_datetime() for d in branch.array(library="np")] == when


def test_nested_vectors_are_a_branch_element_read_as_vectors_of_vectors(tmp_path: Path) -> None:
    nested = [[], [[]], [[1.0, -2.5], [], [3.0]], [[4.0] * 40], [[5.0], [6.0, 7.0]]] * 3
    path = write_tree(
        tmp_path / "v.root",
        "t",
        {"n": np.arange(15, dtype=np.int32), "x": NestedDoubleVectors(nested)},
    )
    tree = uproot.open(path)["t"]
    assert tree.keys() == ["n", "x"]  # the byte placeholder's counter is not in the tree
    branch = tree["x"]
    assert branch.classname == "TBranchElement"
    assert branch.typename == "std::vector<std::vector<double>>"
    interpretation = branch.interpretation
    assert isinstance(interpretation, AsObjects)
    assert isinstance(interpretation.model, AsVector)
    assert interpretation.model.header
    assert isinstance(interpretation.model.values, AsVector)
    assert interpretation.model.values.values == np.dtype(">f8")
    assert branch.array().tolist() == nested
    assert tree["n"].array().tolist() == list(range(15))


def test_many_baskets_keep_every_entry(tmp_path: Path) -> None:
    """uproot's in-place updates after each basket, and its rewrite past ten baskets, use the
    offsets this serialiser records."""
    values = leaf_list(60)
    nested = [[[float(i)] * (i % 3)] for i in range(60)]
    when = [datetime.datetime(2000 + i % 20, 1 + i % 12, 1 + i % 28) for i in range(60)]
    branches = {
        "s": LeafList(values),
        "a": np.arange(60.0),
        "d": DatimeObjects(when),
        "x": NestedDoubleVectors(nested),
    }
    path = write_tree(tmp_path / "many.root", "tree", branches, entries_per_basket=4)
    tree = uproot.open(path)["tree"]
    assert tree.num_entries == 60
    assert [branch.num_baskets for branch in tree.values()] == [15] * 4
    np.testing.assert_array_equal(tree["s"].array(library="np")["y"], values["y"])
    np.testing.assert_array_equal(tree["a"].array(library="np"), np.arange(60.0))
    assert [d.to_datetime() for d in tree["d"].array(library="np")] == when
    assert tree["x"].array().tolist() == nested


def test_branches_of_different_lengths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="different lengths"):
        write_tree(tmp_path / "x.root", "t", {"a": np.ones(2), "s": LeafList(leaf_list(3))})
