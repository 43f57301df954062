"""The rendered flag sets: valid for flagd, and evaluated for real through the flagd provider."""

from __future__ import annotations

import random
import uuid

import pytest

from cutover.flags.document import render_flags

from .conftest import flagd_validator

N = 10_000


def ids(seed: int = 1) -> list[str]:
    """N agent ids shaped like real ones (UUIDs), reproducible per seed.

    At 50 % one standard deviation of the share over 10 000 keys is 0.5 point, so the issue's
    +-1 point is a 2-sigma bound; a fixed seed keeps the test deterministic.
    """
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(N)]


def treated(ev, keys, plan, **attrs) -> set[str]:
    key = plan.flag_keys.read_path
    return {k for k in keys if ev.details(key, k, "legacy", **attrs).variant == "treatment"}


@pytest.mark.parametrize("kill", [False, True])
def test_every_phase_renders_a_valid_flagd_flag_set(plan, kill):
    validator = flagd_validator()
    for phase in plan.phase_names:
        doc = render_flags(plan, phase, "staging", kill_switch=kill)
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, f"{phase}: {errors[0].message}"
        assert set(doc["flags"]) == {
            "memory-read-path",
            "memory-write-mode",
            "memory-kill-switch",
            "memory-rollout-phase",
        }
        assert doc["flags"]["memory-rollout-phase"]["defaultVariant"] == phase


def test_treatment_share_matches_the_plan_within_one_point_and_ramp_is_monotone(plan, evaluate):
    keys = ids()
    previous: set[str] = set()
    shares = {}
    for phase in ("canary", "ramp-25", "ramp-50", "ramp-75"):
        pct = plan.phase(phase).flags.treatment.percentage
        ev = evaluate(render_flags(plan, phase, "staging"))
        now = treated(ev, keys, plan)
        shares[phase] = 100 * len(now) / N
        assert abs(shares[phase] - pct) <= 1.0, f"{phase}: {shares[phase]:.2f} % treated, plan says {pct} %"
        assert previous <= now, f"{len(previous - now)} keys treated before {phase} are control in {phase}"
        previous = now
    assert shares["canary"] < shares["ramp-25"] < shares["ramp-50"] < shares["ramp-75"]


def test_a_key_gets_the_same_variant_on_every_evaluation(plan, evaluate):
    ev = evaluate(render_flags(plan, "ramp-50", "staging"))
    key = plan.flag_keys.read_path
    for k in ids(seed=11)[:500]:
        variants = {ev.details(key, k, "legacy").variant for _ in range(5)}
        assert len(variants) == 1, k


def test_treatment_reads_the_phase_path_and_control_reads_legacy(plan, evaluate):
    ev = evaluate(render_flags(plan, "canary", "staging"))
    values = {}
    for k in ids(seed=3)[:2000]:
        d = ev.details(plan.flag_keys.read_path, k, "legacy")
        values.setdefault(d.variant, set()).add(d.value)
    assert values == {"treatment": {"memoryos"}, "control": {"legacy"}}
    assert ev.details(plan.flag_keys.write_mode, "any", "legacy").value == "mirror"


def test_internal_ids_are_always_treated(plan, evaluate):
    attr, group = plan.targeting.internal_attribute, plan.targeting.internal_values[0]
    for phase in ("canary", "ramp-25", "ramp-75"):
        ev = evaluate(render_flags(plan, phase, "staging"))
        keys = ids(seed=5)[:2000]
        assert treated(ev, keys, plan, **{attr: group}) == set(keys)
        assert len(treated(ev, keys, plan, **{attr: "external"})) < len(keys)


def test_global_and_empty_cohorts(plan, evaluate):
    keys = ids(seed=9)[:1000]
    assert treated(evaluate(render_flags(plan, "full", "staging")), keys, plan) == set(keys)
    assert treated(evaluate(render_flags(plan, "pre-deployment", "staging")), keys, plan) == set()
    full = evaluate(render_flags(plan, "full", "staging"))
    assert full.details(plan.flag_keys.write_mode, "k", "legacy").value == "memoryos-primary"


def test_kill_switch_forces_legacy_for_everyone(plan, evaluate):
    keys = ids(seed=13)
    attr, group = plan.targeting.internal_attribute, plan.targeting.internal_values[0]
    for phase in ("canary", "ramp-75", "full"):
        ev = evaluate(render_flags(plan, phase, "staging", kill_switch=True))
        read = plan.flag_keys.read_path
        assert {ev.details(read, k, "memoryos").value for k in keys} == {"legacy"}
        assert ev.details(read, "staff", "memoryos", **{attr: group}).value == "legacy"
        assert ev.details(plan.flag_keys.kill_switch, "k", False).value is True
        # Writes stay legacy-primary and keep mirroring, so re-entry needs no backfill.
        assert ev.details(plan.flag_keys.write_mode, "k", "legacy").value == "mirror"
    ev = evaluate(render_flags(plan, "canary", "staging"))
    assert ev.details(plan.flag_keys.kill_switch, "k", True).value is False


def test_no_rendered_object_holds_an_array_the_kubernetes_providers_diff_panics_on(plan):
    """Every object of every phase, kill switch on and off, every part enabled: no array whose first
    element is an object or array beside elements of another kind (pulumi-kubernetes' pruneSlice
    panics on those in its Diff; engines/README.md). The check itself finds the old targeting's."""
    from cutover.flags.document import panic_prone_arrays
    from cutover.plan.stacks import load_stack
    from cutover.render.rendering import render

    from .conftest import ROOT

    cfg = load_stack(ROOT, "production")
    on = {"enabled": True}
    cfg = cfg.model_copy(
        update={
            name: getattr(cfg, name).model_copy(update=on)
            for name in ("gateway", "loadtest", "nightly", "migration", "controller")
        }
    )
    for phase in plan.phase_names:
        for kill in (False, True):
            for obj in render(plan, "production", cfg, phase, kill_switch=kill).manifests:
                where = f"{phase} kill={kill} {obj['kind']} {obj['metadata']['name']}"
                assert panic_prone_arrays(obj) == [], where
    old_split = {"fractional": [{"cat": ["salt", {"var": "targetingKey"}]}, ["treatment", 5], ["control", 95]]}
    old_rule = {"if": [{"in": [{"var": "group"}, ["internal"]]}, "treatment", old_split]}
    assert panic_prone_arrays(old_rule) == [".if", ".if[0].in", ".if[2].fractional"]
