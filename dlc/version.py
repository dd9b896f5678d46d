"""The version of dlc: one module of its own, so that any module may import it
without importing the package (whose __init__ imports nearly every module)."""
__version__ = "0.1.0"
