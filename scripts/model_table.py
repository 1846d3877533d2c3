"""Print the README's model x mode table (lang_sam.families.table), or with --write put it in
README.md between its markers: python scripts/model_table.py --write"""

from __future__ import annotations

import argparse
from pathlib import Path

from lang_sam.families.table import model_table, with_table

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    if parser.parse_args().write:
        README.write_text(with_table(README.read_text()))
    else:
        print(model_table())


if __name__ == "__main__":
    main()
