"""Bad model files and bad training inputs: each a clear message, non-zero exit, no run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlaas4hep.errors import ConfigError, FrameworkMissing, ModelError
from mlaas4hep.params import parse_params
from mlaas4hep.sample import TREE, SampleSet
from mlaas4hep.workflow import run_workflow

MODELS = Path(__file__).parent / "models"
BIN = Path(sys.executable).parent


def run(
    sample: SampleSet, tmp_path: Path, model: str, labels: str | None = None, **params: object
) -> None:
    parameters = parse_params(
        {"branch": TREE, "chunk_size": 6000, "epochs": 1, "plots": False, **params}
    )
    (tmp_path / "run").mkdir()
    run_workflow(
        str(sample.files_txt),
        labels or str(sample.labels_txt),
        model,
        tmp_path / "run",
        params=parameters,
    )


def test_the_posters_keras_example_reports_its_syntax_error_with_the_line(
    sample: SampleSet, tmp_path: Path
) -> None:
    with pytest.raises(ModelError) as error:
        run(sample, tmp_path, str(MODELS / "seed_keras_model.py"))
    message = str(error.value)
    assert "seed_keras_model.py, line 15: syntax error" in message
    assert "keras.metrics.AUC(name='auc')" in message


def test_a_model_function_without_return_is_explained(sample: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(
        ModelError,
        match=r"model\(idim\) returned None; does the function end "
        r"with 'return <model>'",
    ):
        run(sample, tmp_path, str(MODELS / "no_return_model.py"))


def test_a_missing_model_function_is_named(sample: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="defines no function 'model'"):
        run(sample, tmp_path, str(MODELS / "no_model_function.py"))


def test_an_unsupported_object_is_named(sample: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"returned a builtins\.dict, which is not a Keras model"):
        run(sample, tmp_path, str(MODELS / "not_a_model.py"))


def test_an_input_width_mismatch_is_explained(sample: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"expects 10 inputs but the data has \d+ columns"):
        run(sample, tmp_path, str(MODELS / "wrong_idim_model.py"))


def test_an_unknown_builtin_suggests_one(sample: SampleSet, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no built-in model 'mpl' \\(did you mean 'mlp'\\?\\)"):
        run(sample, tmp_path, "builtin:mpl")


def test_a_single_class_is_refused(sample: SampleSet, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("1\n1\n")
    with pytest.raises(ConfigError, match="only one class in the data \\(label 1\\)"):
        run(sample, tmp_path, "builtin:linear", labels=str(labels))


def test_a_label_branch_not_in_the_data_is_named(sample: SampleSet, tmp_path: Path) -> None:
    from mlaas4hep.errors import BranchError

    with pytest.raises(BranchError, match="'isSignal' is neither a labels file nor a branch"):
        run(sample, tmp_path, "builtin:linear", labels="isSignal")


@pytest.mark.parametrize(("key", "value"), [("epochs", 0), ("batch_size", -5)])
def test_invalid_epochs_or_batch_size_are_refused(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        parse_params({key: value})


def workflow_cli(
    sample: SampleSet, tmp_path: Path, model: str, env: dict[str, str] | None = None, **files: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(BIN / "mlaas4hep-workflow"),
            "--files",
            files.get("files", str(sample.files_txt)),
            "--labels",
            files.get("labels", str(sample.labels_txt)),
            "--model",
            model,
            "--params",
            str(sample.params_json),
            "--fout",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_a_framework_that_is_not_installed_names_the_extra(
    sample: SampleSet, tmp_path: Path
) -> None:
    """`import torch` fails as on a machine without PyTorch (a stand-in module raises)."""
    blocker = tmp_path / "blocker"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    result = workflow_cli(sample, tmp_path, str(MODELS / "needs_torch.py"), env=env)
    assert result.returncode == 2
    assert "needs 'torch', which is not installed: pip install 'mlaas4hep[torch]'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_labels_txt_with_the_wrong_number_of_lines_exits_2(
    sample: SampleSet, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("1\n0\n1\n")
    result = workflow_cli(sample, tmp_path, "builtin:linear", labels=str(labels))
    assert result.returncode == 2 and "3 label(s) for 2 file(s)" in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_command_line_runs_a_workflow_and_the_operator_cli_delegates(
    sample: SampleSet, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(BIN / "mlaas4hep"),
            "workflow",
            f"--files={sample.files_txt}",
            f"--labels={sample.labels_txt}",
            "--model=builtin:linear",
            f"--params={sample.params_json}",
            f"--preproc={sample.preproc_json}",
            f"--fout={tmp_path / 'run'}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(tmp_path / "run") and summary["headline"]["auc"] > 0.8
    assert (tmp_path / "run" / "pdfs" / "roc.png").is_file()


def test_frameworks_install_error_type_names_module() -> None:
    assert "mlaas4hep[keras]" in str(FrameworkMissing("tensorflow.keras", "model.py"))
