"""The command lines as a user runs them: exit codes, messages, and no half-written output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlaas4hep.sample import SampleSet

BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def chunks_args(sample: SampleSet, fout: Path, *extra: str) -> list[str]:
    return [
        "mlaas4hep-pipeline",
        "chunks",
        "--files",
        str(sample.files_txt),
        "--labels",
        str(sample.labels_txt),
        "--params",
        str(sample.params_json),
        "--fout",
        str(fout),
        *extra,
    ]


def test_chunks_command_prints_a_summary_and_fills_the_run_folder(
    sample: SampleSet, tmp_path: Path
) -> None:
    result = run(
        *chunks_args(sample, tmp_path / "run", "--preproc", str(sample.preproc_json), "--json")
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events_read"] == 12000 and 0 < summary["events_kept"] < 12000
    assert summary["run_dir"] == str(tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {
        "global-specs.json",
        "specs",
        "columns.json",
    }


def test_the_seed_params_run_verbatim_with_a_warning(sample: SampleSet, tmp_path: Path) -> None:
    from test_params import SEED_PARAMS

    params = tmp_path / "params.json"
    params.write_text(SEED_PARAMS)
    result = run(
        "mlaas4hep-pipeline",
        "chunks",
        "--files",
        str(sample.files_txt),
        "--labels",
        str(sample.labels_txt),
        "--params",
        str(params),
        "--preproc",
        str(sample.preproc_json),
        "--fout",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    assert "unknown key 'nevtts' ignored (did you mean 'nevts'?)" in result.stderr


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("params", "params.json: not valid JSON at line 1"),
        ("preproc", "function '__import__' is not allowed"),
        ("labels", "3 label(s) for 2 file(s)"),
        ("file", "file is truncated"),
        (
            "branch",
            "no selected branch 'jetPT' in tree 'boostedAk8/events' (did you mean 'jetPt'?)",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message_and_leaves_no_run_folder(
    sample_copy: SampleSet, tmp_path: Path, damage: str, expected: str
) -> None:
    args = chunks_args(sample_copy, tmp_path / "run", "--preproc", str(sample_copy.preproc_json))
    if damage == "params":
        sample_copy.params_json.write_text('{"epochs": 3,,}')
    elif damage == "preproc":
        sample_copy.preproc_json.write_text(
            json.dumps({"flat_cut": {"nJets": {"cut": "__import__('os')"}}})
        )
    elif damage == "labels":
        sample_copy.labels_txt.write_text("1\n0\n1\n")
    elif damage == "file":
        data = sample_copy.files[1].read_bytes()
        sample_copy.files[1].write_bytes(data[: len(data) // 2])
    elif damage == "branch":
        params = json.loads(sample_copy.params_json.read_text())
        params["selected_branches"] = "HT,jetPT"
        sample_copy.params_json.write_text(json.dumps(params))
    result = run(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".run")] == []


def test_an_existing_run_folder_is_never_overwritten(sample: SampleSet, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("precious")
    result = run(*chunks_args(sample, tmp_path / "run"))
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tmp_path / "run" / "keep.txt").read_text() == "precious"


def test_sample_command_writes_the_requested_shape(tmp_path: Path) -> None:
    result = run(
        "mlaas4hep-pipeline",
        "sample",
        "--out",
        str(tmp_path),
        "--events",
        "500",
        "--flat",
        "22",
        "--jagged",
        "52",
    )
    assert result.returncode == 0, result.stderr
    import uproot

    from mlaas4hep.reader.tree import BranchKind, classify

    with uproot.open(tmp_path / "ttH_signal.root") as handle:
        tree = handle["boostedAk8/events"]
        kinds = [classify(b.interpretation) for b in tree.branches]
    assert kinds.count(BranchKind.FLAT) == 22 and kinds.count(BranchKind.JAGGED) == 52


def test_operator_demo_runs_the_embedded_default(tmp_path: Path) -> None:
    result = run(
        "mlaas4hep",
        "demo",
        "--pipeline-only",
        "--dir",
        str(tmp_path / "demo"),
        "--events",
        "3000",
        "--model",
        "builtin:linear",
        "--epochs",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert "MLaaS4HEP workflow" in result.stdout and "test metrics" in result.stdout
    runs = list((tmp_path / "demo" / "runs").iterdir())
    assert len(runs) == 1
    for name in ("global-specs.json", "metrics.json", "manifest.json", "pdfs/roc.png"):
        assert (runs[0] / name).is_file(), name
