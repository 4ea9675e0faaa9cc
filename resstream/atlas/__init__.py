"""The unit atlas (rule file: rules/atlas.smk): a static HTML site of every studied unit, one page
per block and an index; data loaded (load), drawn by templates (render, templates/, static/), written (write).
"""

from resstream.base.lazy_exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, write="write_block write_index", load="AtlasError")
