"""What every command's main() shares (stages, export/search, promote): logging set-up and one-line errors
instead of tracebacks. Imports only redaction (a leaf), so every front end may use it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from .contracts import LOG_LEVEL_ENV
from .redaction import redact_text

log = logging.getLogger("spherereid")


def configure_logging() -> None:
    """INFO to stderr (SPHEREREID_LOG_LEVEL overrides); called by entry points only."""
    level = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def is_user_error(exc: BaseException) -> bool:
    """Errors raised on purpose by this package (their class is defined in spherereid, or in a stage
    module run as `python -m`, where its module is __main__) or by the OS."""
    module = type(exc).__module__
    return module.startswith("spherereid") or module == "__main__" or isinstance(exc, OSError)


def run_cli(body: Callable[[], int]) -> int:
    """Run a stage body; a user error becomes one line on stderr and exit code 2."""
    configure_logging()
    try:
        return body()
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - only our own error types are turned into one line
        if not is_user_error(exc):
            raise
        # one write (a logging thread cannot split the line), and no credentials of a URI it quotes
        sys.stderr.write(f"error: {redact_text(str(exc))}\n")
        sys.stderr.flush()
        return 2
