"""Golden files: what `cutover render` writes for every stack and phase, committed under
tests/golden/<stack>/<phase>/ so a change to a renderer shows in review as a change to its output.

    python -m tests.golden        (or `make golden`) writes them; tests/test_golden.py checks them.

The dashboards themselves are the committed dashboards/*.json (`cutover dashboards export`); here
only the objects that carry them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cutover.plan.stacks import available_stacks, load_project
from cutover.render.rendering import render

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


PARTS = ("gateway", "loadtest", "nightly", "migration", "controller")  # the stack's optional parts


def expected(root: Path = ROOT) -> dict[str, str]:
    """Relative path under tests/golden -> file text, for every stack and phase, and under
    <stack>/every-part/ the manifests with every optional part enabled (the stacks ship them off)."""
    files: dict[str, str] = {}
    for stack in available_stacks(root):
        plan, cfg = load_project(root, stack)
        for phase in plan.phase_names:
            for rel, text in render(plan, stack, cfg, phase).files().items():
                if not rel.startswith("dashboards/"):
                    files[f"{stack}/{phase}/{rel}"] = text
        every = cfg.model_copy(update={p: getattr(cfg, p).model_copy(update={"enabled": True}) for p in PARTS})
        for rel, text in render(plan, stack, every, cfg.phase).files().items():
            if rel.startswith("manifests/"):
                files[f"{stack}/every-part/{rel}"] = text
    return files


def on_disk(golden: Path = GOLDEN) -> dict[str, str]:
    return {str(p.relative_to(golden)): p.read_text(encoding="utf-8") for p in sorted(golden.rglob("*")) if p.is_file()}


def write(golden: Path = GOLDEN) -> int:
    if golden.exists():
        shutil.rmtree(golden)
    files = expected()
    for rel, text in files.items():
        path = golden / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return len(files)


def stale(golden: Path = GOLDEN) -> list[str]:
    """Paths whose committed text differs from what the renderers write now (missing, extra, edited)."""
    want, have = expected(), on_disk(golden)
    return sorted(p for p in set(want) | set(have) if want.get(p) != have.get(p))


if __name__ == "__main__":
    print(f"{write()} golden files written under {GOLDEN.relative_to(ROOT)}/")
