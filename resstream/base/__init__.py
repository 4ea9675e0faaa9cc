"""What every stage uses, and nothing else: output paths and atomic publishing, tables and their
sidecars, the config schema's defaults, code fingerprints, GPU slots, disk-space checks and the
error a user sees. Modules here import only each other (and no torch), so any stage may use them
and none of them reaches up into a stage.
"""
