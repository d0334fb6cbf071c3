"""The one exception type for errors a user can cause (bad files, bad config, unreachable server), and the one
way to quote a value from a user's file in a message.

The CLI prints `str(error)` on one line and exits with code 2; anything else is a bug and keeps
its traceback.
"""

MAX_VALUE = 60  # characters of a quoted value; a 5 MB code id must not become a 5 MB message
MAX_MESSAGE = 500  # the CLI's cap on a whole message, for values quoted without `shorten`


class CultureCodeError(Exception):
    """A problem the user can fix; the message says what to do."""

    exit_code = 2


def shorten(value: object, limit: int = MAX_VALUE) -> str:
    """`value` as text for an error message: on one line, cut to `limit` characters with the full length noted.

    Use it for every value that comes from a user's file or option (code ids, cells, names, lines).
    """
    text = " ".join(str(value).split())
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 1, 1)]}… ({len(text):,} characters)"
