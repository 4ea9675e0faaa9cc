"""The numbers of an index card's histogram of M (Fig 2's 20 bins on [0, 5]): bar positions,
heights and colours, axis ticks.  The template's ``histogram`` macro draws them as an inline SVG."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resstream.analysis import metrics
from resstream.atlas.content import GROUP_COLORS


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    fill: str  # the colour of the spectrum group of the bin's centre
    low: float  # the bin's edges and the channels in it (the bar's tooltip)
    high: float
    count: int


@dataclass(frozen=True)
class Histogram:
    width: int
    height: int
    values: int  # channels with an M (NaN left out)
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, int], ...]  # (x, label): 0, 1, ... 5 under the bars


def mix_histogram(m_values, mix_factor: float, width: int = 240, height: int = 90) -> Histogram:
    """Clamped M binned as in Fig 2, bars coloured by the spectrum group of their bin centre with
    the tables' factor f (overwrite <= 1/f < mix < f <= skip)."""
    m = np.asarray([np.nan if v is None else v for v in m_values], dtype=float)
    counts, edges, dropped = metrics.mix_histogram(m)
    top = max(1, int(counts.max()) if counts.size else 1)
    step = width / len(counts)
    centres = (edges[:-1] + edges[1:]) / 2
    groups = metrics.mix_group(centres, mix_factor)
    bars = []
    for i, count in enumerate(counts):
        bar_height = (height - 14) * count / top  # 12 px under the bars for the ticks, 2 above
        bars.append(
            Bar(
                x=i * step,
                y=height - 12 - bar_height,
                width=step - 1,
                height=bar_height,
                fill=GROUP_COLORS[groups[i]],
                low=float(edges[i]),
                high=float(edges[i + 1]),
                count=int(count),
            )
        )
    ticks = tuple((min(max(x / 5 * width, 4), width - 4), x) for x in range(0, 6))
    return Histogram(width=width, height=height, values=m.size - dropped, bars=tuple(bars), ticks=ticks)
