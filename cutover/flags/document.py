"""Render the flagd flag set for one phase of the plan (or for a flag state: `cutover.flags.state`).

Three flags steer the memory service per request:

- the read path (`memory-read-path`): variants are keyed by cohort, `control` and `treatment`;
  the value is the path that cohort reads (legacy | shadow | memoryos). The evaluated variant is the
  request's cohort, the value its read path;
- the write mode (`memory-write-mode`): legacy | mirror | memoryos-primary, the same for everyone;
- the kill switch (`memory-kill-switch`): when on, everyone reads legacy and writes go legacy-primary;
- the phase (`memory-rollout-phase`): the phase this flag set belongs to, the same for everyone. The
  flag-set metadata names it too, but an OpenFeature provider in RPC mode (the gateway beside the
  operator's flagd sidecar) is not handed metadata, only values; the gateway reads this flag.

The treatment cohort is the read-path flag's targeting: internal groups by a context attribute,
then a sticky `fractional` split with the treatment bucket first (weights out of 10 000), so a key
treated at 5 % is still treated at 25 %, 50 % and 75 %. flagd buckets on flag key + targeting key;
the campaign's salt is in the targeting key (`Targeting.bucketing_key`: the gateway evaluates
with "<salt>:<agent id>"), so a new salt reshuffles the cohorts. (flagd's schema allows a `$evaluators`
reference only inside a rule, not as a whole targeting, so it is inlined.)

Every JSONLogic array is written so that the released Kubernetes provider of Pulumi can diff it: its
`pruneSlice` (pulumi-kubernetes provider/pkg/provider/util.go) takes the kind of an array's first
element for all of them and panics on an array whose first element is an object or array and a later
one is not of that kind (engines/README.md has the reproduction). So: literals first in comparisons
(`{"==": ["internal", {"var": "group"}]}`), the `if` branches as expressions (`{"cat": ["treatment"]}`),
and `fractional` without a bucketing expression before its buckets. `panic_prone_arrays` finds the
arrays that would break it, and the tests hold every rendered object to none.
"""

from __future__ import annotations

import json
from typing import Any

from cutover.plan.model import PERCENT_SCALE, WRITE_ORDER, PhaseFlags, Plan, Treatment

FLAGD_SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"
TOTAL_WEIGHT = 100 * PERCENT_SCALE
CONTROL, TREATMENT = "control", "treatment"


def _variant(name: str) -> dict[str, Any]:
    """A variant name as an expression (an object, like the condition beside it in an `if`)."""
    return {"cat": [name]}


def cohort_rule(plan: Plan, t: Treatment) -> dict[str, Any] | None:
    """JSONLogic that returns 'treatment' or 'control'; None when the cohort is static."""
    tg = plan.targeting
    if t.is_global:
        return None
    split: dict[str, Any] | None = None
    if t.weight > 0:
        split = {"fractional": [[TREATMENT, t.weight], [CONTROL, TOTAL_WEIGHT - t.weight]]}
    if t.internal:
        internal = [{"==": [value, {"var": tg.internal_attribute}]} for value in tg.internal_values]
        return {"if": [{"or": internal}, _variant(TREATMENT), split or _variant(CONTROL)]}
    return split


def panic_prone_arrays(value: object, path: str = "") -> list[str]:
    """Paths of the arrays in `value` that the Kubernetes provider's Diff cannot prune: the first
    element an object (or array) and a later element not one (see the module's docstring)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += panic_prone_arrays(item, f"{path}.{key}")
    elif isinstance(value, list):
        kinds = {type(item) for item in value if item is not None}
        if value and isinstance(value[0], (dict, list)) and len(kinds) > 1:
            found.append(path or ".")
        for i, item in enumerate(value):
            found += panic_prone_arrays(item, f"{path}[{i}]")
    return found


def kill_write_mode(plan: Plan, phase_mode: str) -> str:
    """The write mode while the kill switch is on: never more MemoryOS-primary than the phase."""
    target = plan.flag_keys.kill_switch_write_mode
    return target if WRITE_ORDER[target] <= WRITE_ORDER[phase_mode] else phase_mode


def render_flags(
    plan: Plan, phase: str, stack: str, *, kill_switch: bool = False, flags: PhaseFlags | None = None
) -> dict[str, Any]:
    """The flagd flag-set document (valid against flagd's flags.json schema). `flags`: the treatment,
    read path and write mode to serve instead of the phase's own (a flag state's overrides)."""
    eff = plan.effective(phase)
    f, keys = flags or eff.phase.flags, plan.flag_keys
    rule = cohort_rule(plan, f.treatment)

    read_flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {CONTROL: "legacy", TREATMENT: "legacy" if kill_switch else f.read_path},
        "defaultVariant": CONTROL,
        "metadata": {"description": f"read path by cohort; treatment = {f.treatment.describe()}"},
    }
    if not kill_switch:
        if f.treatment.is_global:
            read_flag["defaultVariant"] = TREATMENT
        elif rule is not None:
            read_flag["targeting"] = rule

    write_mode = kill_write_mode(plan, f.write_mode) if kill_switch else f.write_mode
    doc: dict[str, Any] = {
        "$schema": FLAGD_SCHEMA_URL,
        "metadata": {
            "flagSetId": plan.name,
            "version": plan.digest(),
            "phase": phase,
            "stack": stack,
            "killSwitch": kill_switch,
        },
        "flags": {
            keys.read_path: read_flag,
            keys.write_mode: {
                "state": "ENABLED",
                "variants": {m: m for m in WRITE_ORDER},
                "defaultVariant": write_mode,
                "metadata": {"description": "write mode for every request"},
            },
            keys.kill_switch: {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "on" if kill_switch else "off",
                "metadata": {"description": "on: everyone reads legacy, writes stay legacy-primary"},
            },
            keys.phase: {
                "state": "ENABLED",
                "variants": {name: name for name in plan.phase_names},
                "defaultVariant": phase,
                "metadata": {"description": "the phase this flag set belongs to"},
            },
        },
    }
    return doc


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
