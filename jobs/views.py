"""spark-submit / python entry point: views of each model's latest window.

Run ``python jobs/views.py --help`` for options.
"""

import sys

from clfeval.cli import views_main

if __name__ == "__main__":
    sys.exit(views_main())
