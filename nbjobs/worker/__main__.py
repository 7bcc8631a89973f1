"""`python -m nbjobs.worker --store PATH [--workers N] ...`: run a detached worker."""

import sys

from nbjobs.worker.command import main

sys.exit(main())
