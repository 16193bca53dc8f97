#!/usr/bin/env python3
"""The entry point cron runs: ``python phishme_to_product.py -conf /path/config.ini``."""

import sys

from phishme_intel.cli import main

if __name__ == "__main__":
    sys.exit(main())
