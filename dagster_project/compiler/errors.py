"""The compiler's error for a user to read (the CLI prints it as one line, no traceback).
Apart from the compiler so the CLI catches it without importing sqlglot."""


class GeneratedWriteError(Exception):
    """The generated models could not be replaced; they are as they were."""
