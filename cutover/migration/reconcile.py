"""Reconciliation: does the target hold what the source (the source of truth) holds? The command's
three steps, as the CLI and the rehearsal call them: `compare` (compare.py: the summary and detail
passes), `repair` (repair.py) and `write_reports` (report.py). Each lives in its own module; this
one names them together so `from cutover.migration import reconcile as rc` keeps working.
"""

from __future__ import annotations

from cutover.migration.compare import compare
from cutover.migration.repair import repair
from cutover.migration.report import write_reports

__all__ = ["compare", "repair", "write_reports"]
