"""Distributed Locust: the master (one headless run per runId, then the judge) and its workers, the
locustfiles ConfigMap and the results volume."""

from __future__ import annotations

import shlex
from typing import Any

from cutover.plan.project import loadtests_dir
from cutover.plan.stacks import Target
from cutover.render.locust import headless_args, scenario_file
from cutover.render.workloads.common import (
    LOCUST_DIR,
    LOCUSTFILES,
    PLAN_DIR,
    analyze_args,
    deployment,
    gateway_url,
    loadtest_run_dir,
    locust_volumes,
    names,
    part_meta,
    pod_container,
    service,
    sh_command,
)


def locustfiles_config_map(t: Target) -> dict[str, Any]:
    plan = t.plan
    data = {f: (loadtests_dir() / f).read_text(encoding="utf-8") for f in LOCUSTFILES}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": part_meta(names(plan)["locustfiles"], t, "loadtest"),
        "data": data,
    }


def results_claim(t: Target) -> dict[str, Any]:
    """One volume for load-test results and nightly verdicts: workers write samples, analyze reads them."""
    plan, cfg = t.plan, t.cfg
    lt = cfg.loadtest
    spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": lt.resultsSize}}}
    if lt.storageClass:
        spec["storageClassName"] = lt.storageClass
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": part_meta(names(plan)["results"], t, "loadtest"),
        "spec": spec,
    }


def locust_master(t: Target) -> list[dict[str, Any]]:
    """The master runs one headless run per `runId` (bounded by `runTime`), then judges it and idles,
    so a restart never repeats a finished run; change `runId` to start another."""
    plan, stack, cfg = t.plan, t.stack, t.cfg
    lt, n = cfg.loadtest, names(plan)
    run = loadtest_run_dir(cfg)
    kind = {"canary": "verdict", "soak": "soak", "baseline": "baseline"}[lt.scenario]
    locust = [
        "locust",
        *headless_args(
            scenario_file(LOCUST_DIR, lt.scenario),
            host=gateway_url(plan, cfg),
            users=lt.users,
            spawn_rate=lt.spawnRate,
            run_time=lt.runTime,
            samples=f"{run}/samples.jsonl",
            csv=f"{run}/stats",
        ),
        "--master",
        "--expect-workers",
        str(lt.workers),
    ]
    analyze = ["cutover", *analyze_args(stack, f"{PLAN_DIR}/rollout.yaml", kind=kind, out=f"{run}/analysis")]
    command = sh_command(
        f"mkdir -p {run}",
        f"if [ ! -e {run}/done ]; then",
        f"  {shlex.join(locust)}",
        # HOLD/ROLLBACK exit non-zero; the verdict is the result
        f"  {shlex.join(analyze)} {run}/samples*.jsonl || true",
        f"  touch {run}/done",
        "fi",
        f'echo "run {lt.runId} finished: {run}/analysis/verdict.json"',
        "exec sleep 2147483647",
    )
    vols, mounts = locust_volumes(plan)
    container = pod_container(
        "master",
        cfg,
        command,
        lt.resources,
        volumeMounts=mounts,
        workingDir=LOCUST_DIR,
        ports=[{"name": "locust", "containerPort": 5557, "protocol": "TCP"}],
    )
    master = deployment(
        n["master"],
        t,
        "locust-master",
        1,
        {"containers": [container], "volumes": vols},
        strategy={"type": "Recreate"},
        annotations={"cutover.io/run-id": lt.runId},
    )
    return [master, service(n["master"], t, "locust-master", "locust", 5557)]


def locust_workers(t: Target) -> dict[str, Any]:
    plan, cfg = t.plan, t.cfg
    lt, n = cfg.loadtest, names(plan)
    run = loadtest_run_dir(cfg)
    command = [
        "locust",
        "-f",
        scenario_file(LOCUST_DIR, lt.scenario),
        "--worker",
        "--master-host",
        n["master"],
        "--samples",
        f"{run}/samples.jsonl",
    ]
    vols, mounts = locust_volumes(plan)
    container = pod_container("worker", cfg, command, lt.resources, volumeMounts=mounts, workingDir=LOCUST_DIR)
    return deployment(
        n["worker"],
        t,
        "locust-worker",
        lt.workers,
        {"containers": [container], "volumes": vols},
        annotations={"cutover.io/run-id": lt.runId},
    )
