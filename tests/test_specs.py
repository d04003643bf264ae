"""Specs: the original keys, values checked against numpy, written only in the run folder,
reused only for identical inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from mlaas4hep.dataset import Dataset
from mlaas4hep.errors import ConfigError
from mlaas4hep.params import parse_params
from mlaas4hep.preprocess import parse_preproc
from mlaas4hep.reader import LabelSource
from mlaas4hep.sample import SEED_PREPROC, TREE, SampleSet
from mlaas4hep.specs import Specs, SpecsCache, obtain_specs

from helpers import run_pipeline

ORIGINAL_KEYS = {"jdim", "minv", "maxv", "fkeys", "jkeys", "nans", "events"}


def read_all(path: Path) -> dict:
    with uproot.open(path) as handle:
        return handle[TREE].arrays(library="ak", how=dict)


def test_global_specs_have_the_original_keys_and_exact_values(
    sample: SampleSet, tmp_path: Path
) -> None:
    specs, _ = run_pipeline([str(f) for f in sample.files], tmp_path)
    document = json.loads((tmp_path / "global-specs.json").read_text())
    assert set(document) >= ORIGINAL_KEYS
    data = [read_all(f) for f in sample.files]
    for key in ("HT", "nJets"):
        assert key in specs.fkeys
        assert specs.minv[key] == pytest.approx(min(float(np.min(d[key])) for d in data))
        assert specs.maxv[key] == pytest.approx(max(float(np.max(d[key])) for d in data))
    for key in ("jetPt", "partonE"):
        assert key in specs.jkeys
        assert specs.jdim[key] == max(int(ak.max(ak.num(d[key]))) for d in data)
        assert specs.minv[key] == pytest.approx(min(float(ak.min(d[key])) for d in data))
    assert document["events"]["total"] == 2 * 6000
    assert document["nans"]["HT"] == pytest.approx(
        -specs.minv["HT"] / (specs.maxv["HT"] - specs.minv["HT"])
    )
    assert [
        "jetPt",
        "jetEta",
        "jetPhi",
        "jetE",
        "jetMass",
        "jetBtag",
        "jetTau21",
        "jetTau32",
    ] in document["jgroups"]


def test_events_after_cuts_match_a_numpy_selection(sample: SampleSet, tmp_path: Path) -> None:
    specs, _ = run_pipeline([str(f) for f in sample.files], tmp_path, preproc=SEED_PREPROC)
    for path in sample.files:
        d = read_all(path)
        log_e = np.log(d["partonE"])
        selected = (
            ak.any(log_e < 6.31, axis=1)
            & ak.all(log_e > 5.85, axis=1)
            & (d["nJets"] ** 2 >= 1)
            & (d["nJets"] ** 2 <= 16)
            & (d["nLeptons"] >= 0)
            & (d["nLeptons"] <= 2)
            & ak.all(d["partonPt"] > 200, axis=1)
        )
        assert specs.events[str(path)] == int(ak.sum(selected))
        assert 0 < specs.events[str(path)] < 6000
    assert "log_partonE" in specs.jkeys and "nJets_square" in specs.fkeys
    assert "partonE" not in specs.jkeys and "nJets" not in specs.fkeys  # keys_to_remove


def test_specs_go_to_the_run_folder_never_the_working_directory(
    sample: SampleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run_pipeline([str(f) for f in sample.files], tmp_path / "run")
    assert list(cwd.iterdir()) == []
    assert (tmp_path / "run" / "global-specs.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "specs").iterdir()) == [
        "specs-ttH_signal.json",
        "specs-ttbar_background.json",
    ]


def open_sample(sample: SampleSet, preproc: dict | None = None) -> Dataset:
    return Dataset.open(
        [str(f) for f in sample.files],
        LabelSource(per_file=(1.0, 0.0)),
        parse_params({"branch": TREE}),
        parse_preproc(preproc),
    )


def test_cached_specs_are_reused_only_for_identical_inputs(
    sample_copy: SampleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SpecsCache(tmp_path / "cache")
    with open_sample(sample_copy) as dataset:
        first = obtain_specs(dataset, tmp_path / "run1", cache=cache)
    assert len(list(cache.folder.iterdir())) == 1

    calls = []
    import mlaas4hep.specs.specs_pass as specs_pass

    original = specs_pass.compute_specs
    monkeypatch.setattr(specs_pass, "compute_specs", lambda d: calls.append(1) or original(d))
    with open_sample(sample_copy) as dataset:
        again = obtain_specs(dataset, tmp_path / "run2", cache=cache)
    assert calls == [] and again.to_json() == first.to_json()

    with open_sample(sample_copy, SEED_PREPROC) as dataset:  # other cuts: other specs
        obtain_specs(dataset, tmp_path / "run3", cache=cache)
    assert calls == [1]

    os.utime(sample_copy.files[0], ns=(1, 1))  # the file changed
    with open_sample(sample_copy) as dataset:
        obtain_specs(dataset, tmp_path / "run4", cache=cache)
    assert calls == [1, 1]


def test_given_specs_are_used_as_given(sample: SampleSet, tmp_path: Path) -> None:
    with open_sample(sample) as dataset:
        computed = obtain_specs(dataset, tmp_path / "run1")
    given = tmp_path / "given.json"
    document = computed.to_json()
    document["maxv"]["HT"] = 1e6  # e.g. ranges from a larger training sample
    given.write_text(json.dumps(document))
    with open_sample(sample) as dataset:
        used = obtain_specs(dataset, tmp_path / "run2", specs_path=given)
    assert used.maxv["HT"] == 1e6
    assert Specs.load(tmp_path / "run2" / "global-specs.json").maxv["HT"] == 1e6


def test_specs_for_other_features_are_refused(sample: SampleSet, tmp_path: Path) -> None:
    with open_sample(sample) as dataset:
        computed = obtain_specs(dataset, tmp_path / "run1")
    given = tmp_path / "given.json"
    given.write_text(json.dumps(computed.to_json()))
    with (
        open_sample(sample, SEED_PREPROC) as dataset,
        pytest.raises(ConfigError, match="other features"),
    ):
        obtain_specs(dataset, tmp_path / "run2", specs_path=given)


def test_malformed_specs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "specs.json"
    path.write_text(json.dumps({"jdim": {}, "minv": {}}))
    with pytest.raises(ConfigError, match="missing maxv, fkeys, jkeys"):
        Specs.load(path)
