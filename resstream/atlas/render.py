"""Pages from the templates under ``resstream/atlas/templates/`` (Jinja2, autoescaped, an undefined
name is an error), and the static stylesheet and script under ``static/``; both ship as package
data."""

from __future__ import annotations

import functools
from importlib import resources

import jinja2

from resstream.analysis import metrics
from resstream.atlas import content, lesions
from resstream.model.weights_source import weights_source

# Every template and static file, named here so that an edit of one changes the atlas jobs' code
# fingerprint (resstream/base/code_fingerprint.py hashes the package files its modules name).
TEMPLATES = (
    "base.html.j2",
    "macros.html.j2",
    "block.html.j2",
    "unit.html.j2",
    "index.html.j2",
    "lesions.html.j2",
    "dictionary_links.html.j2",
    "feature.html.j2",
    "features.html.j2",
)
STATIC = ("atlas.css", "atlas.js")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("resstream.atlas", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        shown=content.fmt_value,
        raw=content.raw_value,
        flag=lambda v: content.raw_value(bool(v)),
        unit_page=content.unit_page_name,
    )
    env.globals.update(
        ROLES=content.ROLES,
        ROLE_TITLES=content.ROLE_TITLES,
        GROUPS=content.GROUPS,
        NO_GROUP=metrics.NO_GROUP,
        TABLE_COLUMNS=content.TABLE_COLUMNS,
        UNIT_NUMBERS=content.UNIT_NUMBERS,
        KEY_NUMBERS=content.KEY_NUMBERS,
        RANDOM_BANNER=content.RANDOM_BANNER,
        CUSTOM_BANNER=content.CUSTOM_BANNER,
        WEIGHTS_KEYS=content.WEIGHTS_KEYS,
        weights_source=weights_source,
        LESION_RATIO_COLUMNS=lesions.RATIO_COLUMNS,
        LESION_MIX_COLUMNS=lesions.MIX_COLUMNS,
    )
    return env


def render(template: str, **context) -> str:
    """The page ``template`` (one of :data:`TEMPLATES`) with ``context``."""
    return environment().get_template(template).render(**context)


def static_text(name: str) -> str:
    """The text of a static file (one of :data:`STATIC`)."""
    return resources.files("resstream.atlas").joinpath("static", name).read_text(encoding="utf-8")
