"""``python -m minimask`` runs the command line."""

import sys

from minimask.cli import main

sys.exit(main())
