"""`python -m specfmt`: the specfmt command line (specfmt.cli)."""

import sys

from specfmt.cli import main

if __name__ == "__main__":
    sys.exit(main())
