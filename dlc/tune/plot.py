"""The search as a picture (matplotlib is optional: imported only when plotting)."""
from __future__ import annotations

import math

import numpy as np

from .space import Choice, OneMinusLogUniform


def plot(result, path, title: str = None) -> str:
    """Save to ``path`` (PNG) the dev error of every scored trial against each
    hyperparameter (log axes for log scales; 1 - value for OneMinusLogUniform),
    coloured by round with each round's box shaded, and the best dev error so far
    against the trial number.  Returns ``path``."""
    try:
        from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend
    except ImportError:
        raise ImportError("dlc.tune.plot needs matplotlib: pip install matplotlib") from None
    if not result.boxes:
        raise ValueError("plot: the search has no trials")
    space = result.boxes[0]
    scored = [t for t in result.trials if t.dev_error is not None and t.status != "failed"]
    n_panels = len(space) + 1
    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows), layout="constrained")
    colours = [f"C{r % 10}" for r in range(len(result.boxes))]
    for k, (name, scale) in enumerate(space.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        draw_parameter(ax, name, scale, result.boxes, scored, colours)
        if k == 0:
            ax.legend(fontsize="x-small")
    ax = fig.add_subplot(rows, cols, n_panels)
    draw_best_so_far(ax, result.trials, colours)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return str(path)


def axis_value(scale, name: str, value):
    """(x coordinate, axis label) of a value on a parameter's axis."""
    if isinstance(scale, Choice):
        return scale.values.index(value), name
    if isinstance(scale, OneMinusLogUniform):
        return 1.0 - value, f"1 - {name}"
    return value, name


def draw_parameter(ax, name, scale, boxes, scored, colours) -> None:
    for r, box in enumerate(boxes):
        b = box[name]
        if isinstance(scale, Choice):
            for v in b.values:
                x = scale.values.index(v)
                ax.axvspan(x - 0.4, x + 0.4, color=colours[r], alpha=0.08)
        else:
            lo, _ = axis_value(scale, name, b.low)
            hi, _ = axis_value(scale, name, b.high)
            ax.axvspan(min(lo, hi), max(lo, hi), color=colours[r], alpha=0.08,
                       label=f"round {r + 1} box")
    for r in range(len(boxes)):
        mine = [t for t in scored if t.round == r]
        if mine:
            xs = [axis_value(scale, name, t.params[name])[0] for t in mine]
            ax.scatter(xs, [t.dev_error for t in mine], s=14, color=colours[r],
                       label=f"round {r + 1}", edgecolors="none")
    ax.set_xlabel(axis_value(scale, name, scale.values[0] if isinstance(scale, Choice)
                             else scale.low)[1])
    ax.set_ylabel("dev error")
    if isinstance(scale, Choice):
        ax.set_xticks(range(len(scale.values)), [str(v) for v in scale.values])
    elif scale.log:
        from matplotlib.ticker import NullFormatter
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())   # minor labels overlap on short ranges


def draw_best_so_far(ax, trials, colours) -> None:
    best, xs, ys = np.inf, [], []
    for t in trials:
        if t.status == "ok" and t.dev_error is not None:
            best = min(best, t.dev_error)
        xs.append(t.index)
        ys.append(best)
    ax.step(xs, ys, where="post", color="k", label="best so far")
    for t in trials:
        if t.dev_error is not None and t.status != "failed":
            ax.scatter([t.index], [t.dev_error], s=10, color=colours[t.round],
                       edgecolors="none", alpha=0.6)
    ax.set_xlabel("trial")
    ax.set_ylabel("dev error")
    ax.legend(fontsize="small")
