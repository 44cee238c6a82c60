"""One exception type for bad user input.

The CLI turns it into a single line on stderr and a non-zero exit, so every message must
name the offending file and/or config key.
"""


class RPGInputError(ValueError):
    """Bad input from the user: a file, a folder or a config key. The message says which."""
