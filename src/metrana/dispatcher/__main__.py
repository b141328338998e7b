import sys

# httpx imports its command-line tool (click, pygments, rich: about 7 MiB) whenever those are
# installed; the dispatcher never runs it (encode/httpx#3547). Must precede any httpx import.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from ._main import main  # noqa: E402

raise SystemExit(main())
