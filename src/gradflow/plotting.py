"""Small matplotlib helpers the experiments' figures share: a headless pyplot, axes labelled in
one call, and the {stem: figure}, {stem: caption} pair an experiment returns.

matplotlib is imported only when a helper is called, so importing gradflow never needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def pyplot():
    """`matplotlib.pyplot` on the non-interactive Agg backend (figures are only saved)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_axes(
    ax, xlabel, ylabel=None, *, title=None, legend=8, ncol=1, grid="both", alpha=0.3
) -> None:
    """Axis labels, an optional title, a light grid (`grid`: the ticks it follows, "major" or
    "both" for log axes' minor ticks too; None: no grid) and a legend in `ncol` columns (font size
    `legend`; None: no legend)."""
    ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if grid is not None:
        ax.grid(True, which=grid, alpha=alpha)
    if legend is not None:
        ax.legend(fontsize=legend, ncol=ncol)


def subplots(ncols=1, nrows=1, width=5.2, height=4.0):
    """A figure of nrows × ncols panels of `width` × `height` inches each, axes always a 2-d
    array."""
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)


def figures_of(record, makers: Iterable[Callable]) -> tuple[dict, dict]:
    """({stem: figure}, {stem: caption}) in the order of `makers`, each `maker(record)` returning
    (stem, figure, caption), or None for a figure that does not apply."""
    figures, captions = {}, {}
    for make in makers:
        made = make(record)
        if made is not None:
            stem, fig, caption = made
            figures[stem], captions[stem] = fig, caption
    return figures, captions


def time_cmap():
    """viridis without its darkest and lightest ends: colours of a sequence (times, depths)."""
    import matplotlib.pyplot as plt

    base = plt.get_cmap("viridis")
    return lambda x: base(0.05 + 0.9 * x)


def panel(width=5.2, height=4.0):
    """(figure, axes) of a single `width` × `height` inch panel on the Agg backend."""
    return pyplot().subplots(figsize=(width, height))
