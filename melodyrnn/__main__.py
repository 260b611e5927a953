"""`python -m melodyrnn` runs the command line."""

import sys

from melodyrnn.cli import main

sys.exit(main())
