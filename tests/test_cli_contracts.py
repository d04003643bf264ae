"""What the operator CLI and the service package must read alike, though the CLI cannot import
the service package (it does not carry the ML stack): the file-list syntax and the final job
states. Each is defined once per distribution; these tests hold the two to the same answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlaas4hep.reader.inputs import read_file_list
from mlaas4hep.server.store import FINAL
from mlaas4hep_cli.client import FINAL_STATES
from mlaas4hep_cli.filelists import file_entries

LISTS = {
    "files.txt": "# signal first\n  sig.root  \n\nroot://eos.example.org//store/bkg.root\n#x.root\n",
    "events.parquet": None,  # a data file named by itself
    "one.root": None,
}


@pytest.mark.parametrize(
    "spec",
    [
        "files.txt",
        "a.root,b.root",
        " a.root , root://host//b.root ,",
        "events.parquet",
        "one.root",
    ],
)
def test_the_cli_and_the_reader_read_a_file_list_alike(
    spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in LISTS.items():
        Path(name).write_text(text if text is not None else "PAR1")
    assert file_entries(spec) == read_file_list(spec)


def test_the_cli_waits_for_exactly_the_servers_final_states() -> None:
    assert {state.value for state in FINAL} == set(FINAL_STATES)
