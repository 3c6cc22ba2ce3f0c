"""spark-submit / python entry point: merge the stored states of several places
(clouds, regions) into central metric tables.

Run ``python jobs/merge.py --help`` for options and exit codes.
"""

import sys

from clfeval.cli import merge_main

if __name__ == "__main__":
    sys.exit(merge_main())
