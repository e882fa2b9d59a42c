"""`python -m specfmt_conformance` is the specfmt-conformance command."""

import sys

from specfmt_conformance.cli import main

sys.exit(main())
