"""spark-submit / python entry point: one self-contained HTML report of a model.

Run ``python jobs/report.py --help`` for options.
"""

import sys

from clfeval.cli import report_main

if __name__ == "__main__":
    sys.exit(report_main())
