"""``python -m dlc``: the dlc command line."""
from .cli import main

if __name__ == "__main__":
    main()
