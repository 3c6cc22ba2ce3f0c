"""spark-submit / python entry point: write the demo predictions Delta table."""

import sys

from clfeval.cli import generate_demo_main

if __name__ == "__main__":
    sys.exit(generate_demo_main())
