"""The pipeline's command-line entry points (`mlaas4hep-pipeline`, `mlaas4hep-workflow`): thin
wrappers over library functions. Errors become exit codes in mlaas4hep.exits, shared with the
services' commands."""
