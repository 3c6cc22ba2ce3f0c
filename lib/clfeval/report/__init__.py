"""The interactive HTML report of one model: ``load_report_data`` reads the
selection's rows (filtered in Spark), ``render`` writes the self-contained page."""

from clfeval.report.data import ReportData, ReportSelection, load_report_data
from clfeval.report.page import render

__all__ = ["ReportData", "ReportSelection", "load_report_data", "render"]
