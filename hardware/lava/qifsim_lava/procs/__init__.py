"""Lava processes and process models of qifsim (only these: the Lava compiler imports every
module in this package while it searches for process models)."""
