"""The error hierarchy shared by every layer.

Every error the user can cause carries the CLI exit code that reports it and a one-line
message; the CLI and the GUI print `str(error)` and never a traceback. It lives in the
lowest layer so that models (weights) and matting (video, output) raise the same kind.
"""


class VidmatteError(Exception):
    """Base class: a one-line, user-facing message plus the exit code that reports it."""

    exit_code: int = 1

    def __str__(self) -> str:
        msg = super().__str__()
        return msg.splitlines()[0] if msg else self.__class__.__name__


class UsageError(VidmatteError):
    """Bad command-line usage or settings (exit 2)."""

    exit_code = 2


class InputError(VidmatteError):
    """The input cannot be read: missing, not a video, empty, unsupported (exit 3)."""

    exit_code = 3


class NoPersonError(VidmatteError):
    """The whole input was read but no person was found (exit 4)."""

    exit_code = 4


class WeightsError(VidmatteError):
    """Weights are missing, corrupt, mismatched or unsafe (exit 5)."""

    exit_code = 5


class OutputError(VidmatteError):
    """The output cannot be written: exists without --overwrite, disk full, not writable (exit 6)."""

    exit_code = 6


class Cancelled(VidmatteError):
    """The user cancelled a long job; work written so far stays resumable (exit 130)."""

    exit_code = 130


def guarded_main(prog: str, fn, argv: list[str] | None = None) -> int:
    """Run a CLI body: user errors become `prog: error: message` and their exit code.

    Used by every console script so that no user-caused failure prints a traceback.
    Set VIDMATTE_DEBUG=1 to see the traceback of a VidmatteError too.
    """
    import os
    import sys

    try:
        return int(fn(argv) or 0)
    except VidmatteError as e:
        if os.environ.get("VIDMATTE_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
