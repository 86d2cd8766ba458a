"""The one exception type for mistakes a user can fix (bad file, bad option)."""


class IbkdError(Exception):
    """A problem with the user's input. The CLI prints the message, without a traceback,
    and exits non-zero. The message names the file, line or option and what was expected."""


class BadRowError(IbkdError):
    """A malformed row or line of a data or suite file, which `--skip-bad-rows` would skip; the
    message names the file and line. The CLI adds the hint to use `--skip-bad-rows` only to
    the commands that take it (`ibkd data stats|split`, `ibkd evaluate`)."""
