r"""Baseline scenario (phase 0): the legacy path's latency and errors under the workload, captured
before anything changes. Analyse with `cutover analyze SAMPLES --phase pre-deployment --kind baseline`.

    locust -f loadtests/baseline.py --headless -u 20 -r 10 -t 120s --host http://127.0.0.1:8080 \
        --samples out/baseline.jsonl
"""

from workload import AgentMemoryUser


class BaselineUser(AgentMemoryUser):
    pass
