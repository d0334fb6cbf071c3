"""The one exception type for errors a user can cause (bad files, bad config, unreachable server).

The CLI prints `str(error)` on one line and exits with code 2; anything else is a bug and keeps
its traceback.
"""


class CultureCodeError(Exception):
    """A problem the user can fix; the message says what to do."""

    exit_code = 2
