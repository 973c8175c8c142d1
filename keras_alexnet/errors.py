"""Errors that the command line reports as one clear line instead of a traceback."""


class UserError(Exception):
    """Bad input from the user (a file, a record, a folder): reported in one line, exit code 1."""

    exit_code = 1


class FlagError(UserError, ValueError):
    """A setting (flag value, config field or option) that cannot work: refused before any work, exit code 2.

    A `ValueError` too, so library callers can catch it as one."""

    exit_code = 2


class Interrupted(UserError):
    """Work stopped on a signal (Ctrl-C, SIGTERM) after saving what it could: exit code 130."""

    exit_code = 130
