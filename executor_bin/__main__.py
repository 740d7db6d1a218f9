"""``python -m executor_bin``."""

import sys

from executor_bin import main

sys.exit(main())
