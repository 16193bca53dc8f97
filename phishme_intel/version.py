"""The version of phishme-intel."""

__version__ = "0.1.0"
