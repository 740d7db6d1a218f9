"""Spider-py: a distributed task engine on Trio, wire-compatible with y-scope's Spider."""

__version__ = "0.1.0"
