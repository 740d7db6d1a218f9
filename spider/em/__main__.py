"""``python -m spider.em``: see ``spider.em.main``."""

import sys

from spider.em.main import main

sys.exit(main())
