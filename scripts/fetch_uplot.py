"""Fetch the pinned uPlot release from the npm registry into the dashboard's static assets.

The tarball is checked against the registry's published sha512 (``INTEGRITY``), then the
files the dashboard serves are written with their sha256 in ``UPLOT.sha256``
(``tests/test_dashboard_assets.py`` checks the bundled files against it). Run it only to
change the version: the files are committed, and nothing is fetched at run time.

    python scripts/fetch_uplot.py
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "1.6.32"
TARBALL = f"https://registry.npmjs.org/uplot/-/uplot-{VERSION}.tgz"
# dist.integrity of uplot@1.6.32 as the registry publishes it (`npm view uplot@1.6.32 dist`)
INTEGRITY = (
    "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/"
    "ep3tOkyTxpiQIw=="
)
# member of the tarball -> file under src/metrana/server/static/vendor/
FILES = {
    "package/dist/uPlot.esm.js": "uPlot.esm.js",
    "package/dist/uPlot.min.css": "uPlot.min.css",
    "package/LICENSE": "uPlot.LICENSE",
}
VENDOR = Path(__file__).resolve().parent.parent / "src/metrana/server/static/vendor"
SUMS = "UPLOT.sha256"


def main() -> int:
    """Download, verify and unpack; exit 1 if the tarball does not match ``INTEGRITY``."""
    with urllib.request.urlopen(TARBALL, timeout=60) as answer:
        data = answer.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        print(f"checksum mismatch for {TARBALL}: {digest} != {INTEGRITY}", file=sys.stderr)
        return 1
    VENDOR.mkdir(parents=True, exist_ok=True)
    lines = [f"# uplot@{VERSION} from {TARBALL} ({INTEGRITY})"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, name in FILES.items():
            extracted = tar.extractfile(member)
            assert extracted is not None, member
            content = extracted.read()
            (VENDOR / name).write_bytes(content)
            lines.append(f"{hashlib.sha256(content).hexdigest()}  {name}")
    (VENDOR / SUMS).write_text("\n".join(lines) + "\n")
    print(f"uplot {VERSION} written to {VENDOR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
