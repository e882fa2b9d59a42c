#!/usr/bin/env python3
"""The reference adapter by path, for a checkout: it is specfmt.conformance_adapter (`specfmt conformance-adapter`
once specfmt[runtime] is installed)."""

from specfmt.conformance_adapter import main

if __name__ == "__main__":
    main()
