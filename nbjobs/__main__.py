"""`python -m nbjobs`: the console script (see `nbjobs.cli`)."""

import sys

from nbjobs.cli.entry import main

sys.exit(main())
