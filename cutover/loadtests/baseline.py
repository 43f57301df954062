r"""Baseline scenario (phase 0): the legacy path's latency and errors under the workload, captured
before anything changes. Analyse with `cutover analyze SAMPLES --phase pre-deployment --kind baseline`.

    locust -f loadtests/baseline.py --headless -u 20 -r 10 -t 120s --host http://127.0.0.1:8080 \
        --samples out/baseline.jsonl
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy reads the package; Locust imports the locustfile's sibling as the top-level `workload`
    from cutover.loadtests.workload import AgentMemoryUser
else:
    from workload import AgentMemoryUser


class BaselineUser(AgentMemoryUser):
    pass
