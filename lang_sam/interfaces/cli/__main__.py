"""python -m lang_sam.interfaces.cli: the lang-sam command."""

import sys

from lang_sam.interfaces.cli import main

sys.exit(main())
