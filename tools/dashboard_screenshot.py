"""Take the dashboard screenshots in docs/images/: an embedded cluster on free ports runs the
word-count example, then headless Chromium draws its job page and the cluster overview.

    python tools/dashboard_screenshot.py          # needs Debian's chromium
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("needs chromium: bash scripts/ci-install-chromium.sh", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        config = work / "em.yaml"
        config.write_text(
            f"task_executor: {{package_dir: {ROOT / 'examples' / 'packages'}}}\n"
            f"embedded: {{data_dir: {work / 'data'}, storage_port: 0, scheduler_port: 0}}\n"
            "metrics: {host: 127.0.0.1, port: 0}\n"
        )
        cluster = subprocess.Popen(
            [sys.executable, "-m", "spider.em", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert cluster.stdout is not None
            banner = cluster.stdout.readline()
            storage = banner.split("storage at ")[1].split(",")[0]
            dashboard = banner.split("dashboard at ")[1].split(",")[0]
            spider = [sys.executable, "-m", "spider.cli", "--storage", storage, "--json"]
            run = subprocess.run(
                [*spider, "submit", "--wait", str(ROOT / "examples" / "wordcount.py")],
                capture_output=True,
                text=True,
                check=True,
            )
            job_id = json.loads(run.stdout)["job_id"]
            shots = {
                "dashboard-job.png": f"{dashboard}#/jobs/{job_id}",
                "dashboard-cluster.png": dashboard,
            }
            for name, url in shots.items():
                subprocess.run(
                    [
                        chromium,
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--hide-scrollbars",
                        f"--user-data-dir={work / 'chromium'}",
                        "--virtual-time-budget=4000",
                        "--window-size=1100,640",
                        f"--screenshot={IMAGES / name}",
                        url,
                    ],
                    capture_output=True,
                    check=True,
                )
                print(f"wrote {IMAGES / name} from {url}")
        finally:
            cluster.terminate()
            cluster.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
