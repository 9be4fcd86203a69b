"""How much the libraries underneath say: quiet by default, more with ``-v``.

Default: transformers logs errors only (its loading reports for an expected new head, its "Writing
model shards" / "Loading weights" bars and datasets' map bars are noise), while polydistill's own
warnings and progress bars (training steps, evaluation, grid runs) stay. ``-v`` restores the
libraries' warnings and bars; ``-vv`` adds their info messages. When stderr is not a terminal (a
redirected log, nohup, CI) no progress bar is drawn at all: their carriage returns and cursor-up
escape codes would fill the log; the Trainer then prints its logged losses as plain lines instead.
"""

from __future__ import annotations

import logging
import sys


def interactive() -> bool:
    """Whether progress bars are drawn: only on a terminal."""
    return sys.stderr.isatty()


def configure(verbosity: int = 0) -> None:
    import datasets
    from huggingface_hub.utils import disable_progress_bars as hub_quiet
    from huggingface_hub.utils import enable_progress_bars as hub_loud
    from transformers.utils import logging as hf_logging

    if verbosity <= 0 or not interactive():
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
        hub_quiet()
    if verbosity <= 0:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        hub_quiet()
    else:
        hf_logging.set_verbosity_info() if verbosity > 1 else hf_logging.set_verbosity_warning()
        datasets.logging.set_verbosity_warning()
        if interactive():
            hf_logging.enable_progress_bar()
            datasets.enable_progress_bars()
            hub_loud()
    logging.getLogger("polydistill").setLevel(logging.INFO if verbosity > 0 else logging.WARNING)
