"""Figs 1-8 of the paper, drawn from the per-block tables (``resstream.analysis.summary``), never
recomputed: one figure's job (:func:`make_figure`).  The marks every figure carries:
:mod:`resstream.analysis.figure_marks`; Figs 2-5: :mod:`resstream.analysis.table_figures`; the image
grids of Figs 1, 6, 7 and 8: :mod:`resstream.analysis.grid_figures`.
"""

from __future__ import annotations

from resstream.analysis.grid_figures import (
    ImageSource,
    fig1_channel_grids,
    fig6_top_scale_metric,
    fig7_both_criteria,
    fig8_closest_mixes,
)
from resstream.analysis.table_figures import (
    fig2_mix_histograms,
    fig3_weights_vs_mix,
    fig4_inhibition,
    fig5_scale_invariance,
)
from resstream.base.job_spec import by_block


def make_figure(
    fig: str,
    fv_csvs: dict,
    imnet_csvs: dict,
    png: str,
    pdf: str,
    *,
    fv_dirs=(),
    exemplar_dirs=(),
    channel_fv_dirs=(),
    figure_channels: dict | None = None,
    channel_fv_roles=("I", "B", "O"),
) -> list[str]:
    """Draw figure ``fig`` ("fig1".."fig8") from per-block table CSVs (``{block: path}``) and, for
    the image grids, the FV chunk folders, per-layer exemplar folders and channel-FV chunk folders
    the figure's job was given.  ``figure_channels`` (Fig 1) and ``channel_fv_roles`` (Figs 1, 6)
    are the figure's options.

    Figs 3 and 4 get the tables of their blocks only (the caller chooses which); the others every
    studied block.  Returns the figure's texts (titles, marks).
    """
    from resstream.base.tables import read_table

    fv, weights, layers = {}, None, {}
    for block, path in fv_csvs.items():
        df, meta = read_table(path)
        fv[block] = df
        weights = weights or meta.get("weights")
        layers[block] = meta.get("layers")
    source = ImageSource(fv_dirs, exemplar_dirs, channel_fv_dirs)
    if fig == "fig1":
        chosen = {b: list(c) for b, c in (figure_channels or {}).items()}
        return fig1_channel_grids(fv, chosen, layers, source, weights, png, pdf, channel_fv_roles)
    if fig == "fig2":
        return fig2_mix_histograms(fv, weights, png, pdf)
    if fig == "fig3":
        return fig3_weights_vs_mix(fv, weights, png, pdf)
    if fig == "fig4":
        return fig4_inhibition(fv, weights, png, pdf)
    if fig == "fig5":
        return fig5_scale_invariance(fv, weights, png, pdf)
    if fig == "fig6":
        return fig6_top_scale_metric(fv, layers, source, weights, png, pdf, channel_fv_roles=channel_fv_roles)
    if fig == "fig7":
        imnet = {b: read_table(p)[0] for b, p in imnet_csvs.items()}
        return fig7_both_criteria(fv, imnet, layers, source, weights, png, pdf)
    if fig == "fig8":
        return fig8_closest_mixes(fv, layers, source, weights, png, pdf)
    raise ValueError(f"figure '{fig}' unknown; one of fig1..fig8")


def figure_job(job) -> list[str]:
    """Entry point of a figure job (its spec: :mod:`resstream.analysis.jobs`): figure
    ``params.figure`` as ``output.png`` and ``output.pdf``, with its options ``params.options``."""
    params, given = job.params, job.input
    return make_figure(
        params.figure,
        by_block(params.blocks, given.get("fv")),
        by_block(params.blocks, given.get("imagenet")),
        job.output.png,
        job.output.pdf,
        fv_dirs=given.get("fv_images", []),
        exemplar_dirs=given.get("exemplars", []),
        channel_fv_dirs=given.get("channel_fvs", []),
        **params.options,
    )
