"""Errors a user can fix: reported as one line, exit status 2, no traceback."""


class UserError(Exception):
    """Bad input: a suite file, a parameter, a path. The message is the whole story.

    Write it as ``<file>: <key path>: expected <what>, got <what>`` where those apply.
    """

    exit_status = 2
