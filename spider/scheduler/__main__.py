"""``python -m spider.scheduler``."""

import sys

from spider.scheduler.cli import main

sys.exit(main())
