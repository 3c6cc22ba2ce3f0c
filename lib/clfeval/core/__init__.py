"""The math: numpy only, no pyspark, pandas or delta (DESIGN.md §6)."""
