"""What `mlaas4hep submit --wait` and `mlaas4hep jobs` say about a finished job."""

from __future__ import annotations

from mlaas4hep_cli.client import outcome


def test_a_succeeded_job_is_summarised_by_its_result_headline() -> None:
    job = {
        "state": "SUCCEEDED",
        "reason": "",
        "result": {"headline": {"auc": 0.91234, "accuracy": 0.845}, "task": "binary"},
    }
    assert outcome(job) == "auc 0.91234, accuracy 0.845"


def test_a_failed_job_is_summarised_by_its_reason() -> None:
    job = {"state": "FAILED", "reason": "out of memory", "result": {}}
    assert outcome(job) == "out of memory"


def test_a_job_without_result_says_nothing() -> None:
    assert outcome({"state": "CANCELLED", "reason": "", "result": None}) == ""
