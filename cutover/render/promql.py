"""PromQL over the plan's metric names and extra selector: the one builder of the alerts, the
dashboards and `cutover flags --watch`.

Names come from the plan's `metrics:` section and `metrics.selector` joins every selector, so a
service with other names or a shared Prometheus still gets working rules. A selector with no
matcher is left out (`metric`, never `metric{}`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cutover.plan.durations import format_duration, parse_duration
from cutover.plan.metrics import name
from cutover.plan.model import Plan


class PromQL:
    """`extra` joins every selector; `cohort_extra` only the selectors of series with a cohort label
    (the dashboards' `$cohort` variable)."""

    def __init__(
        self,
        plan: Plan,
        window: str = "5m",
        extra: Sequence[str] = (),
        cohort_extra: Sequence[str] = (),
        time_scale: float = 1.0,
    ):
        """`time_scale`: every range window divided by it (the rehearsal's compressed time: a
        5-minute window becomes 10 s at 30)."""
        self.plan = plan
        self.window = window
        self.time_scale = time_scale
        self.extra = tuple(extra) + ((plan.metrics.selector,) if plan.metrics.selector else ())
        self.cohort_extra = tuple(cohort_extra)

    @staticmethod
    def scale_duration(duration: str, time_scale: float) -> str:
        """A window or `for:` duration divided by `time_scale` (unchanged at 1; at least 1 s)."""
        if time_scale == 1.0:
            return duration
        return format_duration(max(1, round(parse_duration(duration) / time_scale)))

    def scaled(self, duration: str) -> str:
        return self.scale_duration(duration, self.time_scale)

    def name(self, key: str, suffix: str = "") -> str:
        return name(self.plan, key) + suffix

    def sel(self, cohort_label: bool = False, **matchers: str) -> str:
        parts = [f'{k}="{v}"' for k, v in matchers.items()]
        parts += self.cohort_extra if cohort_label else ()
        parts += self.extra
        return "{" + ",".join(parts) + "}" if parts else ""

    def series(self, key: str, suffix: str = "", cohort_label: bool = False, **matchers: str) -> str:
        return self.name(key, suffix) + self.sel(cohort_label, **matchers)

    def rate(
        self,
        key: str,
        window: str | None = None,
        by: str = "",
        suffix: str = "",
        cohort_label: bool = True,
        **matchers: str,
    ) -> str:
        """`sum by (by) (rate(metric{...}[window]))`; `cohort_label=False` for series without one."""
        return self._summed("rate", key, window, by, suffix, cohort_label, matchers)

    def increase(
        self,
        key: str,
        window: str | None = None,
        by: str = "",
        suffix: str = "",
        cohort_label: bool = True,
        **matchers: str,
    ) -> str:
        """`sum by (by) (increase(metric{...}[window]))`: the count over the window (the binned judge)."""
        return self._summed("increase", key, window, by, suffix, cohort_label, matchers)

    def _summed(
        self, fn: str, key: str, window: str | None, by: str, suffix: str, cohort_label: bool, matchers: dict[str, str]
    ) -> str:
        grouping = f"sum by ({by}) " if by else "sum"
        series = self.series(key, suffix, cohort_label, **matchers)
        return f"{grouping}({fn}({series}[{self.scaled(window or self.window)}]))"

    def quantile(self, q: float, window: str | None = None, by: str = "", **matchers: str) -> str:
        grouping = f"le, {by}" if by else "le"
        rate_expr = self.rate("duration", window, grouping, "_bucket", cohort_label=True, **matchers)
        return f"histogram_quantile({q:g}, {rate_expr})"

    def ratio(self, numerator: str, denominator: str, sep: str = "\n/\n") -> str:
        """A ratio guarded against a zero denominator: no traffic gives no series, never NaN or a page."""
        return f"{numerator}{sep}({denominator} > 0)"

    def error_ratio(self, window: str | None = None, by: str = "", sep: str = "\n/\n", **matchers: str) -> str:
        return self.ratio(
            self.rate("requests", window, by, cohort_label=True, **{**matchers, "outcome": "error"}),
            self.rate("requests", window, by, cohort_label=True, **matchers),
            sep,
        )

    def mean(self, key: str, window: str | None = None, sep: str = "\n/\n", **matchers: str) -> str:
        """Mean of a histogram over a window: rate of its sum over rate of its count."""
        return self.ratio(
            self.rate(key, window, suffix="_sum", cohort_label=False, **matchers),
            self.rate(key, window, suffix="_count", cohort_label=False, **matchers),
            sep,
        )
