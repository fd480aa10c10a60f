"""The package version, in a leaf module so that modules below the package can name it
without importing ``promptver`` itself (an import cycle, see tests/test_import_graph.py)."""

__version__ = "0.1.0"
