"""The house: subpackages by subsystem, imports that only go down, a repository that stands alone."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import ROOT, SCHEMAS

PACKAGE = ROOT / "cutover"

# Which subpackages each one may import. The order is the architecture: the plan at the bottom, the
# flags (their document, state and changes) over it, the renderers and the judge over those, the
# stores, migration and the gateway over those (the gateway reads the flags, never a renderer),
# operations over everything they drive, and the shells (Pulumi program, docs hooks, command line) on top.
ALLOWED: dict[str, set[str]] = {
    "plan": set(),
    "flags": {"plan"},
    "render": {"plan", "flags"},
    "judge": {"plan"},
    "store": {"plan"},
    "migration": {"plan", "store"},
    "gateway": {"plan", "flags", "judge", "store", "migration"},
    "ops": {"plan", "flags", "render", "judge", "store", "migration", "gateway"},
    "infra": {"plan", "flags", "render", "judge", "ops"},
    "docs": {"plan", "render", "judge"},
    "cli": {"plan", "flags", "render", "judge", "store", "migration", "gateway", "ops"},
}


_SCAN = """
import ast, json, sys
out = {}
for path in sys.argv[1:]:
    found, relative = set(), []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                relative.append(node.lineno)
            elif node.module == "cutover":
                names = ["cutover." + a.name for a in node.names]
            elif node.module:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("cutover.")}
    out[path] = {"imports": sorted(found), "relative": relative}
print(json.dumps(out))
"""


def cutover_imports(*paths: Path) -> dict[Path, set[str]]:
    """The cutover subpackages each module imports (at module level or inside functions).

    Parsed in a fresh interpreter: CPython 3.11's parser can fail with "AST constructor recursion
    depth mismatch" in a process where an earlier test hit a RecursionError on purpose."""
    result = subprocess.run([sys.executable, "-c", _SCAN, *map(str, paths)], capture_output=True, text=True, check=True)
    scanned = json.loads(result.stdout)
    for path, info in scanned.items():
        assert not info["relative"], f"{path}:{info['relative'][0]}: relative import; import cutover.<subpackage>"
    return {Path(p): set(info["imports"]) for p, info in scanned.items()}


def test_every_module_lives_in_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert loose == [], f"modules outside a subpackage: {loose}"
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__" and p.name != "loadtests"}
    assert packages == set(ALLOWED)


# A module answers one question, in under MAX_LINES lines, every one of them.
MAX_LINES = 500


def test_every_module_is_short():
    long = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "infra").rglob("*.py")]):
        rel = str(path.relative_to(ROOT))
        if len(path.read_text(encoding="utf-8").splitlines()) >= MAX_LINES:
            long.append(rel)
    assert long == [], f"modules of {MAX_LINES} lines or more: split them by noun"


def test_imports_only_go_down():
    wrong = []
    for sub, allowed in ALLOWED.items():
        for path, imported in cutover_imports(*sorted((PACKAGE / sub).rglob("*.py"))).items():
            wrong += [f"{path.relative_to(ROOT)} imports cutover.{i}" for i in sorted(imported - allowed - {sub})]
    assert wrong == []


def test_the_layering_check_catches_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from cutover.ops.controller import Controller\n")
    assert cutover_imports(module)[module] - ALLOWED["plan"] == {"ops"}


def test_vendored_schemas_match_their_recorded_sources():
    sources = yaml.safe_load((SCHEMAS / "SOURCES.yaml").read_text())
    on_disk = {p.name for p in SCHEMAS.iterdir() if p.name != "SOURCES.yaml"}
    assert set(sources) == on_disk
    for name, src in sources.items():
        assert {"upstream", "version", "url", "sha256"} <= set(src), name
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == src["sha256"], (
            f"{name} differs from SOURCES.yaml"
        )


# The one reading beside the checkout that is allowed: .ci/run passes the machine's optional bundle of
# prebuilt engines to `make engines` when that directory exists (these lines, and nothing else).
ALLOWED_BESIDE = {
    ".ci/run": (
        'if [ -z "${CUTOVER_ENGINES_BUNDLE:-}" ] && [ -f ../shared/engines/engines.json ]; then',
        'export CUTOVER_ENGINES_BUNDLE="$PWD/../shared/engines"',
    )
}


def test_nothing_reads_outside_the_checkout():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for rel in tracked:
        path = ROOT / rel
        if rel == "tests/test_layout.py":  # this test names what it looks for
            continue
        if path.suffix not in (".py", ".sh", ".yml", ".yaml", ".toml", ".cfg", "") or not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        code = [ln for ln in lines if not ln.lstrip().startswith("#")]
        allowed = ALLOWED_BESIDE.get(rel, ())
        for line in code:
            if ("../shared" in line or '/ "shared"' in line) and line.strip() not in allowed:
                offenders.append(f"{rel}: {line.strip()}")
    assert offenders == [], f"lines that read beside the checkout: {offenders}"
    # and the allowed lines are there: the bundle is found where the machines keep it
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert all(a in (ln.strip() for ln in ci) for a in ALLOWED_BESIDE[".ci/run"])


def test_every_package_directory_is_in_the_wheel():
    """`[tool.setuptools] packages` lists packages by name: one not listed is missing from the wheel
    and the image (a split module that became a package, e.g. render/workloads/)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts
    }
    assert found - listed == set(), "add to [tool.setuptools] packages"


def layout_map() -> dict[str, str]:
    """The README's layout map: subpackage -> the text of its entry (continuation lines included)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        head = line[:14].strip()
        if line.startswith("  ") and head.endswith("/"):
            current = head.rstrip("/")
            entries[current] = line[14:]
        elif current and line.startswith(" " * 14):
            entries[current] += " " + line.strip()
    return entries


def unnamed_modules(entries: dict[str, str], package: Path) -> list[str]:
    """Subpackages without an entry and modules (or nested packages) their entry does not name."""
    import re

    missing = []
    for sub in sorted(p for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"):
        text = entries.get(sub.name)
        if text is None:
            missing.append(f"{sub.name}/ (no entry)")
            continue
        words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", text))
        for mod in sorted(sub.iterdir()):
            name = mod.stem if mod.suffix == ".py" else mod.name if mod.is_dir() else None
            if name and name not in ("__init__", "__main__", "__pycache__") and name not in words:
                missing.append(f"{sub.name}/{mod.name}")
    return missing


def test_the_readme_layout_map_names_every_module():
    """A newcomer reads the map first: every subpackage has an entry and every module (or nested
    package) is named in it, so a split or a new module updates the map in the same commit."""
    missing = unnamed_modules(layout_map(), PACKAGE)
    assert not missing, f"README's layout map does not name: {missing}"


def test_the_layout_map_check_notices_a_missing_module_and_a_missing_entry(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "gateway").mkdir()
    for name in ("__init__.py", "rows.py", "newthing.py"):
        (tmp_path / "store" / name).write_text("")
    entries = {"store": "records, rows (the row codec)"}
    assert unnamed_modules(entries, tmp_path) == ["gateway/ (no entry)", "store/newthing.py"]
    assert unnamed_modules(layout_map(), PACKAGE) == []


def test_every_type_ignore_names_its_code_and_says_why():
    """mypy runs strict over the package (`make lint`); the few places it cannot follow say which
    error they silence and why, on the same line."""
    import re

    pattern = re.compile(r"#\s*type:\s*ignore(?!\[[-a-z, ]+\]\s+#\s*\S)")
    bad = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "infra").rglob("*.py")])
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not bad, bad
    assert pattern.search("x = 1  # type: ignore") and pattern.search("x  # type: ignore[misc]")
    assert not pattern.search("x  # type: ignore[misc]  # why")


def test_mypy_is_strict_over_the_whole_package():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert cfg["strict"] is True and set(cfg["files"]) == {"cutover", "infra"}
    loosened = {
        k for o in cfg.get("overrides", []) for k, v in o.items() if k.startswith(("disallow", "warn")) and not v
    }
    assert not loosened, loosened


def test_every_tracked_symlink_stays_inside_the_checkout():
    """A tracked link is relative and lands in the repository (a committed `.venv -> /abs/path` once
    replaced a developer's virtualenv with a link to itself on merge)."""
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in listed.splitlines() if line.startswith("120000 ")]
    bad = []
    for rel in links:
        target = (ROOT / rel).readlink()
        if target.is_absolute() or not (ROOT / rel).resolve().is_relative_to(ROOT.resolve()):
            bad.append(f"{rel} -> {target}")
    assert links and not bad, bad
