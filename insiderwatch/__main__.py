"""``python -m insiderwatch``: the command line (see ``insiderwatch --help``)."""

import sys

from insiderwatch.stream.cli import main

sys.exit(main())
