"""``python -m spider.cli``."""

import sys

from spider.cli import main

sys.exit(main())
