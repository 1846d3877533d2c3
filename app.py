"""The lang-sam web app: ``python app.py`` is ``lang-sam app``; ``python app.py --help`` lists the flags."""

import sys

from lang_sam.interfaces.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
