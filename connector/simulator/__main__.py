"""``python -m connector.simulator``: the ``hss-images simulate`` command on its own."""

from __future__ import annotations

import argparse
import sys

from connector.simulator.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connector.simulator",
        description="Serve the embedded HSS API simulator.",
        allow_abbrev=False,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
