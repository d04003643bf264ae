"""preproc.json: the original grammar, with the original's semantics, checked against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from mlaas4hep.errors import ConfigError, ExpressionError
from mlaas4hep.preprocess import load_preproc, parse_preproc
from mlaas4hep.sample import SEED_PREPROC

# The poster's preproc.json as printed (odd indentation included).
SEED_PREPROC_TEXT = """{
  "new_branch": {
    "log_partonE": {
      "def": "log(partonE)",
      "type": "jagged",
      "cut_1": ["log_partonE<6.31", "any"],
      "cut_2": ["log_partonE>5.85", "all"],
      "remove": "False",
      "keys_to_remove": ["partonE"]},
    "nJets_square": {
      "def": "nJets**2",
      "type": "flat",
      "cut": "1<=nJets_square<=16",
      "remove": "False",
      "keys_to_remove": ["nJets"]}},
    "flat_cut": {
      "nLeptons": {
        "cut": "0<=nLeptons<=2",
        "remove": "False"}},
    "jagged_cut": {
      "partonPt": {
        "cut": ["partonPt>200", "all"],
        "remove": "False"}}}"""


def events() -> dict:
    return {
        "partonE": ak.Array([[400.0, 500.0], [300.0, 450.0], [], [600.0], [360.0, 545.0, 380.0]]),
        "partonPt": ak.Array([[250.0, 300.0], [210.0, 220.0], [], [500.0], [201.0, 199.0, 300.0]]),
        "nJets": np.array([2, 3, 5, 1, 4], dtype=np.int32),
        "nLeptons": np.array([0, 1, 2, 3, 2], dtype=np.int32),
    }


def test_seed_preproc_parses_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "preproc.json"
    path.write_text(SEED_PREPROC_TEXT)
    preproc = load_preproc(path)
    assert preproc.new_names == ["log_partonE", "nJets_square"]
    assert preproc.removed == {"partonE", "nJets"}
    assert json.loads(SEED_PREPROC_TEXT) == SEED_PREPROC


def test_seed_preproc_selects_exactly_the_events_numpy_selects() -> None:
    preproc = parse_preproc(SEED_PREPROC)
    data = events()
    out, kept = preproc.apply(data)
    # The same selection written out by hand, event by event, as a reference.
    expected = []
    for i in range(len(data["nJets"])):
        log_e = np.log(np.asarray(data["partonE"][i]))
        pt = np.asarray(data["partonPt"][i])
        passes = (
            np.any(log_e < 6.31)
            and np.all(log_e > 5.85)
            and 1 <= data["nJets"][i] ** 2 <= 16
            and 0 <= data["nLeptons"][i] <= 2
            and np.all(pt > 200)
        )
        expected.append(bool(passes))
    assert expected == [True, False, False, False, False]
    assert kept == sum(expected)
    assert set(out) == {"partonPt", "nLeptons", "log_partonE", "nJets_square"}
    assert out["nJets_square"].tolist() == [4]
    assert ak.to_list(out["log_partonE"])[0] == pytest.approx(np.log([400.0, 500.0]).tolist())


def test_remove_true_drops_the_branch_after_the_cut() -> None:
    preproc = parse_preproc({"flat_cut": {"nLeptons": {"cut": "nLeptons<2", "remove": "True"}}})
    out, kept = preproc.apply(events())
    assert kept == 2 and "nLeptons" not in out


def test_any_and_all_on_empty_events_follow_numpy() -> None:
    any_cut = parse_preproc({"jagged_cut": {"partonPt": {"cut": ["partonPt>0", "any"]}}})
    all_cut = parse_preproc({"jagged_cut": {"partonPt": {"cut": ["partonPt>0", "all"]}}})
    assert any_cut.apply(events())[1] == 4  # the empty event has no parton above 0
    assert all_cut.apply(events())[1] == 5  # ... and vacuously all of them are


def test_later_new_branches_can_use_earlier_ones() -> None:
    preproc = parse_preproc(
        {
            "new_branch": {
                "a": {"def": "nJets*2", "type": "flat"},
                "b": {"def": "a+1", "type": "flat"},
            }
        }
    )
    out, _ = preproc.apply(events())
    assert out["b"].tolist() == [5, 7, 11, 3, 9]


def test_declared_type_must_match_the_expression() -> None:
    flat_declared = parse_preproc({"new_branch": {"x": {"def": "log(partonE)", "type": "flat"}}})
    with pytest.raises(ExpressionError, match='declared "flat"'):
        flat_declared.apply(events())
    jagged_declared = parse_preproc({"new_branch": {"x": {"def": "nJets*2", "type": "jagged"}}})
    with pytest.raises(ExpressionError, match='declared "jagged"'):
        jagged_declared.apply(events())


def test_flat_cut_on_a_jagged_expression_asks_for_any_or_all() -> None:
    preproc = parse_preproc({"flat_cut": {"partonPt": {"cut": "partonPt>200"}}})
    with pytest.raises(ExpressionError, match='"any"'):
        preproc.apply(events())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"new_branches": {}}, "did you mean 'new_branch'"),
        ({"new_branch": {"x": {"def": "nJets", "typ": "flat"}}}, "unknown key 'typ'"),
        ({"new_branch": {"x": {"type": "flat"}}}, 'missing "def"'),
        ({"new_branch": {"x": {"def": "nJets", "type": "scalar"}}}, '"type" must be'),
        ({"jagged_cut": {"partonPt": {"cut": ["partonPt>1", "some"]}}}, '"any" or "all"'),
        ({"jagged_cut": {"partonPt": {"cut": "partonPt>1"}}}, "jagged cuts are written"),
        ({"flat_cut": {"nJets": {"cut": "nJets>1", "remove": "maybe"}}}, "true/false"),
        ({"flat_cut": {"nJets": {"cut": "__import__('os')"}}}, "not allowed"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_malformed_preproc_is_refused_naming_the_place(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_preproc(document)


def test_names_are_checked_against_the_tree_before_reading() -> None:
    preproc = parse_preproc({"new_branch": {"x": {"def": "log(partonEE)", "type": "jagged"}}})
    with pytest.raises(ConfigError, match=r"unknown branch 'partonEE'.*'partonE'"):
        preproc.check_names({"partonE", "nJets"}, "preproc.json")
