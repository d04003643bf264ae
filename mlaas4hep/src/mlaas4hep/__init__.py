"""MLaaS4HEP service side: ROOT ntuples to training-ready arrays, models and artifacts."""

__version__ = "0.1.0"
