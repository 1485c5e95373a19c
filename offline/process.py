"""How the offline tools end their process. Imports nothing heavy: the benchmark's floor uses it too."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process without tearing down the interpreter.

    Freeing the SDKs' thousands of classes at exit took about a fifth of a preview's wall time.
    Every file the process wrote is closed by then; only the standard streams need flushing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
