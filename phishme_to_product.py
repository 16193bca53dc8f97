#!/usr/bin/env python3
"""The entry point cron runs: ``python phishme_to_product.py -conf /path/config.ini``."""

from phishme_intel.cli import script

if __name__ == "__main__":
    script()
