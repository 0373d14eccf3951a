"""Web tests: the example Flask and Django apps on their test clients and under gunicorn.

Flask, Django, gunicorn and waitress are test extras (pyproject), installed by `make test`.
Every test fails if it leaves a child process behind (running or zombie).
"""

from __future__ import annotations

from proc_scan import no_child_left_behind  # noqa: F401  (an autouse fixture)
