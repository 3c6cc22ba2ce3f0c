"""clfeval: evaluate classification models at scale on Spark and Delta."""

__version__ = "0.1.0"
