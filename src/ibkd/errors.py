"""The one exception type for mistakes a user can fix (bad file, bad option)."""


class IbkdError(Exception):
    """A problem with the user's input. The CLI prints the message, without a traceback,
    and exits non-zero. The message names the file, line or option and what was expected."""
