"""Spark aggregation (pyspark only): input contract, bucketing, the one scan, derive."""
