"""``python -m phishme_intel -conf config.ini``."""

from .cli import script

script()
