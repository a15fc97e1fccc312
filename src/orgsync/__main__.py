"""`python -m orgsync`: the same command line as the `orgsync` script."""

from __future__ import annotations

from orgsync.cli import app

if __name__ == "__main__":
    app(prog_name="orgsync")
