"""The one-command rehearsal: the campaign on one machine, on loopback, with the real components.

Render the staging stack; promtool check and test; start Prometheus, Alertmanager, the gateway
(SQLite stores) and the rollback controller; seed a legacy corpus, migrate it and reconcile. Shadow:
first a drift spike (a third of the migrated records taken out of MemoryOS) keeps the gate into
canary closed, then `cutover reconcile --repair` and a new drift window open it. Canary: first a
regression injected into MemoryOS reads is judged ROLLBACK, the gate stays closed and the abort
alert makes the controller roll back; then the clean canary is judged. Every judged phase runs the
canary scenario until the judge has its minimum samples, and is judged with the plan's thresholds
(only `min_samples` lowered; the report says why). A ramp phase runs a chaos drill (latency, then
errors, injected into MemoryOS: `cutover drill`, as an operator runs it against the stack) in which the
alert fires in Prometheus, Alertmanager calls the controller, the flags roll back, clients keep getting
answers through fallback, and `cutover reconcile --after-rollback --repair` repairs the window; then on
to full. Time is compressed: the rules rendered for the rehearsal have
their windows and `for:` durations divided by `scale`, and the phases' minimum durations (days) are
divided by DURATION_SCALE (`cutover flags` and `cutover gate --time-scale`: a day is a second).
"""

from cutover.ops.rehearsal.scenarios import Rehearsal

__all__ = ["Rehearsal"]
