"""The embedded single-node cluster: storage, the scheduler and one EM in one process.

This package sits above ``spider.storage``, ``spider.scheduler`` and ``spider.em`` and is the
only one that imports all three; the EM package itself depends on neither service.
``spider.cluster.main`` is the command line of ``python -m spider.em``, which runs this cluster
when it is given no endpoints.
"""

from spider.cluster.embedded import EmbeddedEndpoints, open_embedded_cluster, run_embedded_cluster

__all__ = ["EmbeddedEndpoints", "open_embedded_cluster", "run_embedded_cluster"]
