"""SegExplorer: see why a semantic segmentation model labels each region the way it does."""

__version__ = "0.1.0"
