"""One module per verb, in the style of xOpera's commands: options, errors mapped to one message
and exit code (`user_errors`), and a call into the operations (operations.py, client.py). Only
main.py imports these modules."""
