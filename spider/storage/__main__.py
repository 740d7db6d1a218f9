"""``python -m spider.storage``: see ``spider.storage.cli``."""

import sys

from spider.storage.cli import main

sys.exit(main())
