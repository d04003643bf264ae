"""Service-side command-line entry points (thin wrappers over library functions)."""
