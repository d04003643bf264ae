"""Packs the toolkit's own files into the CLI's wheel, so that an installed `mlaas4hep` (pip,
pipx) renders, validates, builds images and deploys without a checkout.

The wheel's `mlaas4hep_cli/toolkit/` holds the repository's tosca/, ansible/ and images/, and the
sources the images are built from (mlaas4hep/ and cli/), laid out as in the repository so that
`home.toolkit_home()` and the image builds read it like a checkout. Build the wheel from the
repository (`pip wheel ./cli`, `python -m build --wheel cli`): the files live beside cli/.
(The images install the CLI from cli/ alone, without these files, which they do not need.)
Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

REPOSITORY = Path(__file__).resolve().parent.parent
PACKED = {
    ".dockerignore": ".dockerignore",
    "tosca": "tosca",
    "ansible": "ansible",
    "images": "images",
    "mlaas4hep/pyproject.toml": "mlaas4hep/pyproject.toml",
    "mlaas4hep/README.md": "mlaas4hep/README.md",
    "mlaas4hep/src": "mlaas4hep/src",
    "cli/pyproject.toml": "cli/pyproject.toml",
    "cli/README.md": "cli/README.md",
    "cli/src": "cli/src",
}
# Build leftovers, installed dependencies (the dev-oidc image installs its own) and caches.
LEFT_OUT = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.egg-info", "build", "node_modules", ".pytest_cache", "toolkit"
)


class BuildWithToolkit(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds the checkout itself
        missing = [source for source in PACKED if not (REPOSITORY / source).exists()]
        if missing:
            # The Python images install the CLI from a copy of cli/ alone, and need no toolkit;
            # a wheel built that way says, when run, that it cannot find its files.
            print(
                f"warning: {', '.join(missing)} not beside cli/: building the mlaas4hep-cli "
                "wheel without the toolkit's files (build it from a checkout to include them)"
            )
            return
        target = Path(self.build_lib) / "mlaas4hep_cli" / "toolkit"
        shutil.rmtree(target, ignore_errors=True)
        for source, packed in PACKED.items():
            origin, destination = REPOSITORY / source, target / packed
            destination.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, destination, ignore=LEFT_OUT)
            else:
                shutil.copy2(origin, destination)


setup(cmdclass={"build_py": BuildWithToolkit})
