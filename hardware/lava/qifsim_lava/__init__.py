"""qifsim's Lava side: runs qifsim exchange files in lava-nc (Python 3.10, no torch)."""

__version__ = "0.1.0"
