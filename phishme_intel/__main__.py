"""``python -m phishme_intel -conf config.ini``."""

import sys

from .cli import main

sys.exit(main())
