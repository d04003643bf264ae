"""Inputs and reading: file lists, labels, local/remote paths, and every damaged-input case
ending in a clear error that names the file (or branch) concerned."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import uproot

from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import BranchError, ConfigError, InputFileError
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import BranchKind, LabelSource, read_file_list, read_labels, resolve_path
from mlaas4hep.sample import TREE, SampleSet


def open_dataset(
    files: list[str],
    params: dict | None = None,
    preproc: dict | None = None,
    labels: LabelSource | None = None,
) -> Dataset:
    labels = labels or LabelSource(per_file=tuple(float(i % 2) for i in range(len(files))))
    return Dataset.open(
        files, labels, parse_params({"branch": TREE, **(params or {})}), parse_preproc(preproc)
    )


def test_files_txt_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    listing = tmp_path / "files.txt"
    listing.write_text("# signal\n/data/a.root\n\n  /data/b.root  \n# end\n")
    assert read_file_list(str(listing)) == ["/data/a.root", "/data/b.root"]
    assert read_file_list("a.root, b.root") == ["a.root", "b.root"]


def test_duplicate_or_empty_file_lists_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="more than once"):
        read_file_list("a.root,a.root")
    empty = tmp_path / "files.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no input files"):
        read_file_list(str(empty))


def test_labels_file_must_have_one_line_per_file(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("1\n0\n1\n")
    with pytest.raises(ConfigError, match=r"3 label.*2 file.*one line per input file"):
        read_labels(str(labels), ["a.root", "b.root"])


def test_labels_can_be_a_file_a_list_or_a_branch(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("# signal first\n1\n0\n")
    assert read_labels(str(labels), ["a", "b"]).per_file == (1.0, 0.0)
    assert read_labels("1,0", ["a", "b"]).per_file == (1.0, 0.0)
    assert read_labels("isSignal", ["a", "b"]).branch == "isSignal"
    with pytest.raises(ConfigError, match="not found"):
        read_labels("missing/labels.txt", ["a", "b"])
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nsignal\n")
    with pytest.raises(ConfigError, match="'signal' is not a number"):
        read_labels(str(bad), ["a", "b"])


def test_redirector_prefixes_paths_not_found_locally(tmp_path: Path) -> None:
    local = tmp_path / "here.root"
    local.write_bytes(b"x")
    assert resolve_path(str(local), "root://eos.example") == str(local.resolve())
    assert (
        resolve_path("/store/user/f.root", "root://xrootd.ba.infn.it")
        == "root://xrootd.ba.infn.it//store/user/f.root"
    )
    with pytest.raises(InputFileError, match=r"not found.*no 'redirector'"):
        resolve_path("/store/user/f.root", "")


def test_sample_files_open_with_flat_and_jagged_branches(sample: SampleSet) -> None:
    with open_dataset([str(f) for f in sample.files]) as dataset:
        kinds = dataset.feature_kinds
        assert kinds["HT"].value == "flat" and kinds["jetPt"].value == "jagged"
        assert "event" not in kinds and "run" not in kinds, "identifiers are not features"
        assert dataset.files[0].tree.counters["partonE"] == "nPartons"


def test_empty_file_is_named(sample: SampleSet, tmp_path: Path) -> None:
    empty = tmp_path / "empty.root"
    empty.touch()
    with pytest.raises(InputFileError, match=r"empty\.root: file is empty"):
        open_dataset([str(sample.files[0]), str(empty)])


def test_corrupt_file_is_named(sample: SampleSet, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputFileError, match=r"corrupt\.root: cannot open as a ROOT file"):
        open_dataset([str(corrupt)])


def test_truncated_file_is_named(sample: SampleSet, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(sample.files[0].read_bytes()[: sample.files[0].stat().st_size // 2])
    with pytest.raises(InputFileError, match=r"truncated\.root: file is truncated"):
        open_dataset([str(truncated)])


def test_damaged_baskets_fail_when_read_naming_file_and_entries(
    sample: SampleSet, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.root"
    data = bytearray(sample.files[0].read_bytes())
    middle = len(data) // 3
    data[middle : middle + 20000] = b"\x55" * 20000
    damaged.write_bytes(bytes(data))
    from mlaas4hep.specs.specs_pass import compute_specs

    with (
        open_dataset([str(damaged)]) as dataset,
        pytest.raises(
            InputFileError, match=r"damaged\.root: cannot read entries .* truncated or corrupt"
        ),
    ):
        compute_specs(dataset)


def test_missing_tree_lists_the_trees_and_suggests(sample: SampleSet) -> None:
    with pytest.raises(
        InputFileError,
        match=r"no tree 'boostedAk8/event'.*did you mean "
        r"'boostedAk8/events'",
    ):
        open_dataset([str(sample.files[0])], {"branch": "boostedAk8/event"})


def test_misspelt_selected_branch_suggests_the_closest(sample: SampleSet) -> None:
    with pytest.raises(BranchError, match=r"no selected branch 'jetPT'.*did you mean 'jetPt'"):
        open_dataset([str(sample.files[0])], {"selected_branches": "HT,jetPT"})


def test_misspelt_label_branch_is_not_taken_for_a_file(sample: SampleSet) -> None:
    with pytest.raises(BranchError, match=r"'nJet'.*did you mean 'nJets'"):
        open_dataset([str(sample.files[0])], labels=LabelSource(branch="nJet"))


def test_branches_differing_across_files_are_named(sample: SampleSet, tmp_path: Path) -> None:
    other = tmp_path / "other.root"
    with uproot.recreate(other) as out:
        out.mktree(TREE, {"HT": np.float32, "MET": np.float32})
        out[TREE].extend(
            {"HT": np.ones(10, dtype=np.float32), "MET": np.ones(10, dtype=np.float32)}
        )
    with pytest.raises(BranchError, match=r"branches differ across files: .*other\.root lacks"):
        open_dataset([str(sample.files[0]), str(other)])


def test_selected_and_excluded_branches_shape_the_features(sample: SampleSet) -> None:
    with open_dataset(
        [str(sample.files[0])],
        {"selected_branches": ["HT", "MET", "jetPt"], "exclude_branches": "MET"},
    ) as dataset:
        assert list(dataset.feature_kinds) == ["HT", "jetPt"]


def test_nevts_is_split_across_files_in_proportion_to_their_entries(
    sample: SampleSet, tmp_path: Path
) -> None:
    small = tmp_path / "small.root"
    shutil.copy(sample.files[1], small)
    with uproot.update(small) as handle:
        del handle[TREE]
    from mlaas4hep.sample import write_file

    write_file(small, 2000, False, seed=9, basket_events=500)
    with open_dataset(
        [str(sample.files[0]), str(small)], {"nevts": 4000, "chunk_size": 1000}
    ) as dataset:
        quotas = [f.quota for f in dataset.files]
        steps = [f.step for f in dataset.files]
    assert quotas == [3000, 1000]  # 6000 : 2000 entries
    assert steps == [750, 250] and sum(steps) == 1000


def test_unreachable_xrootd_host_fails_fast_and_clearly() -> None:
    import time

    began = time.monotonic()
    with pytest.raises(InputFileError, match=r"root://127\.0\.0\.1:1//data/x\.root: cannot open"):
        open_dataset(["root://127.0.0.1:1//data/x.root"])
    assert time.monotonic() - began < 10


def test_an_rntuple_is_read_where_a_tree_is_expected(tmp_path: Path) -> None:
    # Issue 12 item 13: RNTuples were refused ("is a ROOT::RNTuple, not a TTree"); now read.
    rntuple = tmp_path / "rntuple.root"
    with uproot.recreate(rntuple) as out:
        out[TREE] = {"HT": np.ones(10, dtype=np.float32)}  # uproot writes an RNTuple here
    with open_dataset([str(rntuple)]) as dataset:
        assert dataset.files[0].tree.format == "RNTuple"
        assert dataset.feature_kinds == {"HT": BranchKind.FLAT}


def test_zlib_baskets_are_inflated_by_isal_with_the_same_values(sample: SampleSet) -> None:
    """The reader switches uproot's ZLIB decompression to ISA-L (faster); the arrays read must
    be the very ones zlib gives."""
    import uproot.compression

    import mlaas4hep.reader
    from mlaas4hep.reader.decompression import zlib_inflater

    assert mlaas4hep.reader.ISAL_ZLIB and uproot.compression._decompress_ZLIB.library == "isal"
    with uproot.open(sample.files[0]) as handle:
        assert handle.file.compression.name == "ZLIB"

    def read(library: str) -> list[dict[str, object]]:
        # A fresh file handle each time: uproot caches arrays per open file.
        with zlib_inflater(library), uproot.open(sample.files[0], array_cache=None) as handle:
            return handle[TREE].arrays(library="ak", entry_stop=5000).tolist()

    assert read("isal") == read("zlib")
    assert uproot.compression._decompress_ZLIB.library == "isal", "switched back after the block"
