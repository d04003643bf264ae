"""params.json is accepted in the original format; mistakes are named precisely."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mlaas4hep.errors import ConfigError
from mlaas4hep.params import DEFAULT_IDENTIFIERS, load_params, parse_params

# The poster's params.json, verbatim (with its own typo, "nevtts").
SEED_PARAMS = """{
  "nevtts": 3000,
  "shuffle": true,
  "chunk_size": 1000,
  "epochs": 3,
  "batch_size": 100,
  "identifier": "",
  "branch": "boostedAk8/events",
  "selected_branches": "",
  "exclude_branches": "",
  "hist": "pdfs",
  "redirector": "root://xrootd.ba.infn.it",
  "verbose": 1
}"""


def test_seed_params_are_accepted_verbatim_and_the_typo_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "params.json"
    path.write_text(SEED_PARAMS)
    with caplog.at_level(logging.WARNING, logger="mlaas4hep"):
        params = load_params(path)
    assert params.chunk_size == 1000 and params.epochs == 3 and params.batch_size == 100
    assert params.branch == "boostedAk8/events"
    assert params.redirector == "root://xrootd.ba.infn.it"
    assert params.selected_branches == [] and params.exclude_branches == []
    assert params.nevts == -1, "an unknown key must not silently set anything"
    assert "unknown key 'nevtts'" in caplog.text and "did you mean 'nevts'" in caplog.text


def test_empty_identifier_means_the_nanoaod_identifiers() -> None:
    assert parse_params({"identifier": ""}).identifier == DEFAULT_IDENTIFIERS
    assert parse_params({}).identifier == DEFAULT_IDENTIFIERS
    assert parse_params({"identifier": "runNo, evtNo,lumi"}).identifier == [
        "runNo",
        "evtNo",
        "lumi",
    ]


def test_branch_lists_accept_comma_strings_and_lists() -> None:
    params = parse_params({"selected_branches": "a, b,c", "exclude_branches": ["x", " y "]})
    assert params.selected_branches == ["a", "b", "c"]
    assert params.exclude_branches == ["x", "y"]


def test_wrong_type_names_the_key_and_the_value() -> None:
    with pytest.raises(ConfigError) as error:
        parse_params({"epochs": "three", "batch_size": 0})
    message = str(error.value)
    assert "'epochs'" in message and '"three"' in message
    assert "'batch_size'" in message


@pytest.mark.parametrize("value", [0, -2])
def test_chunk_size_must_be_positive_or_minus_one(value: int) -> None:
    with pytest.raises(ConfigError, match="chunk_size"):
        parse_params({"chunk_size": value})


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text('{\n  "epochs": 3,\n  "batch_size": 100,,\n}')
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(path) in str(error.value) and "line 3" in str(error.value)


def test_a_non_object_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_params(path)


def test_missing_params_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_params(tmp_path / "nope.json")


def test_later_original_keys_are_understood() -> None:
    params = parse_params({"training": "standard", "split": 0.3, "nan": -1, "metrics": True})
    assert params.training == "standard"
    assert params.split.test == pytest.approx(0.3)
    assert params.nan == -1.0 and params.metrics.threshold == 0.5
    assert parse_params({"metrics": {"threshold": 0.7}}).metrics.threshold == 0.7
    assert parse_params({"metrics": {"threshold": 0}}).metrics.threshold == 0.5


def test_invalid_parameters_are_one_line_naming_key_value_and_what_is_allowed() -> None:
    with pytest.raises(ConfigError) as error:
        parse_params({"non_finite": "skip", "split": {"test": 0.2, "tset": 0.1}})
    message = str(error.value)
    assert "\n" not in message
    assert """'non_finite' = "skip": must be 'error' or 'drop'""" in message
    assert "'split.tset' = 0.1: unknown key (allowed: validation, test)" in message
