"""Errors a user can fix: reported as one line, exit status 2, no traceback."""

# A bug in mlxbench: distinct from 1 (a case failed, a regression) and 2 (input the user can fix).
INTERNAL_ERROR = 3


class UserError(Exception):
    """Bad input: a suite file, a parameter, a path. The message is the whole story.

    Write it as ``<file>: <key path>: expected <what>, got <what>`` where those apply.
    """

    exit_status = 2
