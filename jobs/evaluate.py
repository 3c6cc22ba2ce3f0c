"""spark-submit / python entry point: evaluate predictions into Delta metric tables.

Run ``python jobs/evaluate.py --help`` for options and exit codes.
"""

import sys

from clfeval.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
