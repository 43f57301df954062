"""Canary scenario: control and treatment traffic side by side through the gateway.

The cohort of each request is the one the gateway's flags chose (read from its response), so the
split is the real one. Analyse with `cutover analyze SAMPLES --phase canary --out DIR`.

    locust -f loadtests/canary.py --headless -u 20 -r 10 -t 60s --host http://127.0.0.1:8080 --samples out/canary.jsonl
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy reads the package; Locust imports the locustfile's sibling as the top-level `workload`
    from cutover.loadtests.workload import AgentMemoryUser
else:
    from workload import AgentMemoryUser


class CanaryUser(AgentMemoryUser):
    pass
