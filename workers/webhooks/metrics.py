"""Where the metrics of webhook deliveries are counted: one call per attempt's outcome.

`obs` (Prometheus) hooks `mostrador_webhook_deliveries_total{outcome}` here; until then this counts in memory
(tests and the bench read `counts`).
"""

from __future__ import annotations

from collections import Counter

counts: Counter[str] = Counter()


def delivery_outcome(outcome: str) -> None:
    """An attempt ended: `succeeded` (2xx), `retried` (a retry is scheduled) or `failed` (given up)."""
    counts[outcome] += 1
