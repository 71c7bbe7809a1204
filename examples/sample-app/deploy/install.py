"""Deploy the sample app: install its wheel and settings into a folder of its own.

changeflow runs this with the delta in CHANGEFLOW_DELTA_PATH and the delta's artifacts, already
checked against their sha256, under CHANGEFLOW_ARTIFACTS_DIR.
"""

import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path


def main() -> int:
    target = Path(sys.argv[sys.argv.index("--target") + 1])
    artifacts = Path(os.environ["CHANGEFLOW_ARTIFACTS_DIR"])
    delta = json.loads(Path(os.environ["CHANGEFLOW_DELTA_PATH"]).read_text())
    target.mkdir(parents=True, exist_ok=True)
    for entry in delta:
        path = artifacts / entry["name"] / entry["app_artifacts"]["filename"]
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            print(f"{path} does not match its entry", file=sys.stderr)
            return 1
        if entry["type"] == "python-wheel":
            site = target / "site"
            shutil.rmtree(site, ignore_errors=True)
            with zipfile.ZipFile(path) as wheel:
                wheel.extractall(site)
        elif entry["type"] == "config":
            shutil.copy(path, target / path.name)
    record = {
        "change_request": os.environ["CHANGEFLOW_CHANGE_REQUEST"],
        "environment": os.environ["CHANGEFLOW_ENVIRONMENT"],
        "region": os.environ["CHANGEFLOW_REGION"],
        "target": str(target),
    }
    (target / "DEPLOYED.json").write_text(json.dumps(record, indent=2))
    # the acceptance tests run next in the same folder and read where to look from here
    Path("deployed.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
