"""Synthetic ttH(bb)-like ntuples: signal and background files shaped like the CMS boosted
all-hadronic flatTrees of the project's poster (tree `boostedAk8/events`, flat + jagged branches,
`partonE`, `partonPt`, `nJets`, `nLeptons`, ...), for the demo, the tests and the benchmarks.

Distributions are loosely physical (falling pT spectra, b-tag scores, jet masses near the top and
Higgs masses) and differ between signal and background enough to train a classifier on. All
generation is vectorised; files are written by uproot in baskets of `basket_events` events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

TREE = "boostedAk8/events"
IDENTIFIERS = ("run", "event", "luminosityBlock")
BASE_FLAT = ("run", "event", "luminosityBlock", "nBJets", "HT", "MET", "METphi", "nPV", "rho")
COLLECTIONS = {  # collection -> (counter branch, fields)
    "jet": ("nJets", ("Pt", "Eta", "Phi", "E", "Mass", "Btag", "Tau21", "Tau32")),
    "parton": ("nPartons", ("Pt", "Eta", "Phi", "E")),
    "lepton": ("nLeptons", ("Pt", "Eta", "Phi", "Iso")),
}
EXTRA_COLLECTIONS = (("track", "nTracks", 20), ("sv", "nSVs", 12), ("photon", "nPhotons", 10))

# The poster's preproc.json, verbatim: it must run on this data.
SEED_PREPROC = {
    "new_branch": {
        "log_partonE": {
            "def": "log(partonE)",
            "type": "jagged",
            "cut_1": ["log_partonE<6.31", "any"],
            "cut_2": ["log_partonE>5.85", "all"],
            "remove": "False",
            "keys_to_remove": ["partonE"],
        },
        "nJets_square": {
            "def": "nJets**2",
            "type": "flat",
            "cut": "1<=nJets_square<=16",
            "remove": "False",
            "keys_to_remove": ["nJets"],
        },
    },
    "flat_cut": {"nLeptons": {"cut": "0<=nLeptons<=2", "remove": "False"}},
    "jagged_cut": {"partonPt": {"cut": ["partonPt>200", "all"], "remove": "False"}},
}


@dataclass(frozen=True)
class SampleShape:
    """How many branches to write; counts include identifiers and collection counters."""

    flat: int = len(BASE_FLAT) + len(COLLECTIONS)
    jagged: int = sum(len(fields) for _, fields in COLLECTIONS.values())

    def extra_layout(self) -> tuple[int, list[tuple[str, str, int, int]]]:
        """(extra flat branches, [(collection, counter, max length, n fields)])."""
        base_flat = len(BASE_FLAT) + len(COLLECTIONS)
        base_jagged = sum(len(fields) for _, fields in COLLECTIONS.values())
        extra_jagged = self.jagged - base_jagged
        if extra_jagged < 0 or self.flat < base_flat:
            raise ValueError(
                f"a sample has at least {base_flat} flat and {base_jagged} jagged branches"
            )
        collections = []
        remaining = extra_jagged
        for index, (name, counter, length) in enumerate(EXTRA_COLLECTIONS):
            left = len(EXTRA_COLLECTIONS) - index
            fields = -(-remaining // left) if remaining else 0
            if fields:
                collections.append((name, counter, length, fields))
                remaining -= fields
        extra_flat = self.flat - base_flat - len(collections)
        if extra_flat < 0:
            raise ValueError("too few flat branches for the collection counters requested")
        return extra_flat, collections


@dataclass(frozen=True)
class SampleSet:
    folder: Path
    files: tuple[Path, ...]
    files_txt: Path
    labels_txt: Path
    params_json: Path
    preproc_json: Path


def generate_events(
    n: int, signal: float, rng: np.random.Generator, shape: SampleShape, first_event: int = 0
) -> dict[str, object]:
    """One batch of events as uproot-writable arrays (records for collections).

    `signal` 1 gives ttH(bb)-like events, 0 ttbar-like ones; values between give a process
    in between (a third class for multi-class tests).
    """
    s = float(signal)
    data: dict[str, object] = {}
    data["run"] = np.full(n, 1, dtype=np.int32)
    data["event"] = np.arange(first_event, first_event + n, dtype=np.int64)
    data["luminosityBlock"] = (data["event"] // 1000 + 1).astype(np.int32)

    n_jets = np.clip(rng.poisson(1.6 + 0.9 * s, n) + 1, 1, 8).astype(np.int32)
    jet_pt = (300 + rng.exponential(180 + 60 * s, n_jets.sum())).astype(np.float32)
    jet_eta = rng.normal(0, 1.1, n_jets.sum()).astype(np.float32)
    top_or_higgs = rng.random(n_jets.sum()) < 0.05 + 0.30 * s
    jet_mass = (
        np.where(
            top_or_higgs,
            rng.normal(125, 12, n_jets.sum()),
            np.where(
                rng.random(n_jets.sum()) < 0.4,
                rng.normal(173, 15, n_jets.sum()),
                rng.gamma(2.5, 25, n_jets.sum()),
            ),
        )
        .clip(5)
        .astype(np.float32)
    )
    btag = np.clip(rng.beta(1.2 + 1.8 * s, 3.0 - 1.2 * s, n_jets.sum()), 0, 1).astype(np.float32)
    jets = {
        "Pt": jet_pt,
        "Eta": jet_eta,
        "Phi": rng.uniform(-np.pi, np.pi, n_jets.sum()).astype(np.float32),
        "E": (np.sqrt((jet_pt * np.cosh(jet_eta)) ** 2 + jet_mass**2)).astype(np.float32),
        "Mass": jet_mass,
        "Btag": btag,
        "Tau21": rng.beta(2 + 1.5 * (1 - s), 3, n_jets.sum()).astype(np.float32),
        "Tau32": rng.beta(2.5, 2.5 + s, n_jets.sum()).astype(np.float32),
    }
    n_partons = np.clip(rng.poisson(1.0 + 0.6 * s, n) + 1, 1, 6).astype(np.int32)
    parton_pt = (175 + rng.exponential(160 + 40 * s, n_partons.sum())).astype(np.float32)
    parton_eta = rng.normal(0, 0.7, n_partons.sum()).astype(np.float32)
    partons = {
        "Pt": parton_pt,
        "Eta": parton_eta,
        "Phi": rng.uniform(-np.pi, np.pi, n_partons.sum()).astype(np.float32),
        "E": (parton_pt * np.cosh(parton_eta) + rng.exponential(40, n_partons.sum())).astype(
            np.float32
        ),
    }
    lepton_odds = s * np.array([0.70, 0.22, 0.06, 0.02]) + (1 - s) * np.array(
        [0.6, 0.28, 0.09, 0.03]
    )
    n_leptons = rng.choice(4, n, p=lepton_odds)
    n_leptons = n_leptons.astype(np.int32)
    lep_pt = (10 + rng.exponential(35, n_leptons.sum())).astype(np.float32)
    leptons = {
        "Pt": lep_pt,
        "Eta": rng.normal(0, 1.2, n_leptons.sum()).astype(np.float32),
        "Phi": rng.uniform(-np.pi, np.pi, n_leptons.sum()).astype(np.float32),
        "Iso": rng.exponential(0.08, n_leptons.sum()).astype(np.float32),
    }
    ht = ak.sum(ak.unflatten(jet_pt, n_jets), axis=1).to_numpy().astype(np.float32)
    data["nBJets"] = ak.sum(ak.unflatten(btag > 0.6, n_jets), axis=1).to_numpy().astype(np.int32)
    data["HT"] = ht
    data["MET"] = rng.exponential(45 + 10 * (1 - s), n).astype(np.float32)
    data["METphi"] = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    data["nPV"] = rng.poisson(28, n).astype(np.int32)
    data["rho"] = rng.gamma(9, 2.5, n).astype(np.float32)

    for name, counts, fields in (
        ("jet", n_jets, jets),
        ("parton", n_partons, partons),
        ("lepton", n_leptons, leptons),
    ):
        data[name] = ak.zip({k: ak.unflatten(v, counts) for k, v in fields.items()})

    extra_flat, extra_collections = shape.extra_layout()
    for index in range(extra_flat):
        data[f"eventVar{index}"] = rng.normal(s * 0.1 * (index % 3), 1.0, n).astype(np.float32)
    for name, _counter, length, n_fields in extra_collections:
        counts = rng.integers(0, length + 1, n).astype(np.int32)
        total = int(counts.sum())
        columns = {
            f"F{i}": rng.normal(i, 1.0 + 0.05 * i, total).astype(np.float32)
            for i in range(n_fields)
        }
        data[name] = ak.zip({k: ak.unflatten(v, counts) for k, v in columns.items()})
    return data


def _counter_names(shape: SampleShape) -> dict[str, str]:
    names = {name: counter for name, (counter, _) in COLLECTIONS.items()}
    names.update({name: counter for name, counter, _, _ in shape.extra_layout()[1]})
    return names


def write_file(
    path: Path,
    events: int,
    signal: float,
    seed: int,
    shape: SampleShape = SampleShape(),
    basket_events: int = 10000,
    tree: str = TREE,
) -> Path:
    """Write one ntuple of `events` events in baskets of `basket_events`."""
    rng = np.random.default_rng(seed)
    counters = _counter_names(shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as out:
        written = 0
        while written < events:
            n = min(basket_events, events - written)
            batch = generate_events(n, signal, rng, shape, first_event=written)
            if written == 0:
                out.mktree(
                    tree,
                    {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in batch.items()},
                    counter_name=lambda counted: counters[counted],
                    field_name=lambda outer, inner: outer + inner,
                )
            out[tree].extend(batch)
            written += n
    return path


def default_params(tree: str = TREE, chunk_size: int = 10000) -> dict[str, object]:
    """A params.json for the sample, in the original format."""
    return {
        "nevts": -1,
        "shuffle": True,
        "chunk_size": chunk_size,
        "epochs": 3,
        "batch_size": 256,
        "identifier": list(IDENTIFIERS),
        "branch": tree,
        "selected_branches": "",
        "exclude_branches": "",
        "hist": "pdfs",
        "redirector": "",
        "verbose": 0,
    }


def write_sample(
    folder: Path,
    events: int = 20000,
    seed: int = 1,
    shape: SampleShape = SampleShape(),
    basket_events: int = 10000,
) -> SampleSet:
    """Signal + background files and the files.txt/labels.txt/params.json/preproc.json for them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    signal = write_file(folder / "ttH_signal.root", events, True, seed, shape, basket_events)
    background = write_file(
        folder / "ttbar_background.root", events, False, seed + 1, shape, basket_events
    )
    files_txt = folder / "files.txt"
    files_txt.write_text(f"# MLaaS4HEP sample: signal then background\n{signal}\n{background}\n")
    labels_txt = folder / "labels.txt"
    labels_txt.write_text("1\n0\n")
    params_json = folder / "params.json"
    params_json.write_text(json.dumps(default_params(), indent=2) + "\n")
    preproc_json = folder / "preproc.json"
    preproc_json.write_text(json.dumps(SEED_PREPROC, indent=2) + "\n")
    return SampleSet(folder, (signal, background), files_txt, labels_txt, params_json, preproc_json)
