"""The progress bar of ``fit`` (tqdm, an optional nicety: imported only when shown)."""
from __future__ import annotations

import sys


def progress_bar(progress, total: int):
    """A tqdm bar of ``total`` epochs, or None; ``progress`` None means: when stderr is
    a terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="epoch", desc="fit")


def update_bar(bar, logs: dict) -> None:
    if bar is None:
        return
    shown = {"loss": f"{logs['loss']:.4g}", "samples/s": f"{logs['samples_per_second']:.3g}"}
    for key in ("dev_loss", "dev_accuracy"):
        if key in logs:
            shown[key] = f"{logs[key]:.4g}"
    bar.set_postfix(shown)
    bar.update(1)
