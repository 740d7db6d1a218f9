"""``python -m spider.em``: the process entry, see ``spider.cluster.main``.

The one module under ``spider/em`` that reaches above the EM package: without endpoints the
command runs the embedded cluster (storage, the scheduler and this EM), which lives in
``spider.cluster``. Nothing imports this module; the rest of ``spider.em`` depends on neither
``spider.storage`` nor ``spider.scheduler`` (tests/unit/em/test_em_layering.py checks it).
"""

import sys

from spider.cluster.main import main

sys.exit(main())
