"""One module per command: argument wiring plus a call into a plain function."""
