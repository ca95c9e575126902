"""The package version, read by the package and the command."""
__version__ = "0.1.0"
