"""evc-archive: extreme video compression with generative prediction, at corpus scale."""

__version__ = "0.1.0"
