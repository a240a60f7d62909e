"""Regenerate the committed dashboard JSON: ``python -m zerotick.dashboards [folder]``."""

from __future__ import annotations

import sys
from pathlib import Path

from zerotick.dashboards import OUTPUT_DIR, write_all


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else OUTPUT_DIR
    for path in write_all(folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
