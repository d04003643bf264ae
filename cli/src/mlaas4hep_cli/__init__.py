"""MLaaS4HEP operator toolkit: the `mlaas4hep` command.

Light dependencies only (Typer, Rich, ...): the service package `mlaas4hep` (uproot, ML
frameworks) is imported lazily, and only by commands that run the pipeline on this machine.
"""

__version__ = "0.1.0"
