"""Shared fixtures: the project root, the vendored official schemas, real flagd evaluation."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = Path(__file__).resolve().parent / "schemas"  # vendored: SOURCES.yaml names each one's upstream
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def plan():
    from cutover.plan.model import load_plan

    return load_plan(ROOT / "rollout.yaml")


def stamped_evidence(dest: Path) -> Path:
    """tests/fixtures/evidence copied to `dest`, each file stamped with the plan digest of the
    project's rollout.yaml (the gate counts evidence only under the plan it was judged under; the
    committed fixtures name none, so an edit of the plan never makes them stale)."""
    from cutover.plan.model import load_plan

    digest = load_plan(ROOT / "rollout.yaml").digest()
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted((FIXTURES / "evidence").glob("*.json")):
        data = json.loads(f.read_text())
        (dest / f.name).write_text(json.dumps({**data, "plan_digest": digest}, indent=2))
    return dest


@pytest.fixture(scope="session")
def evidence_dir(tmp_path_factory) -> Path:
    return stamped_evidence(tmp_path_factory.mktemp("evidence"))


def flagd_validator() -> jsonschema.Validator:
    flags = json.loads((SCHEMAS / "flagd-flags.schema.json").read_text())
    targeting = json.loads((SCHEMAS / "flagd-targeting.schema.json").read_text())
    registry = Registry().with_resources(
        [
            ("https://flagd.dev/schema/v0/targeting.json", Resource.from_contents(targeting)),
            ("https://flagd.dev/schema/v0/flags.json", Resource.from_contents(flags)),
        ]
    )
    # The root of flags.json holds both $id and $ref; draft 7 ignores an $id beside $ref, so enter
    # through its URL to give ./targeting.json a base to resolve against.
    return jsonschema.Draft7Validator({"$ref": "https://flagd.dev/schema/v0/flags.json"}, registry=registry)


def crd_validator(file_name: str, version: str) -> jsonschema.Validator:
    """A validator for objects of a CRD version, from its openAPIV3Schema."""
    crd = yaml.safe_load((SCHEMAS / file_name).read_text())
    (ver,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return jsonschema.Draft7Validator(ver["schema"]["openAPIV3Schema"])


_domains = itertools.count()


class FlagEvaluator:
    """Evaluates a rendered flag file through openfeature-sdk + the flagd provider in FILE mode."""

    def __init__(self, path: Path):
        from openfeature import api
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType

        self.domain = f"test-{next(_domains)}"
        self.provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        api.set_provider_and_wait(self.provider, domain=self.domain)
        self.client = api.get_client(domain=self.domain)

    def details(self, key: str, targeting_key: str, default, **attrs):
        from openfeature.evaluation_context import EvaluationContext

        ctx = EvaluationContext(targeting_key, attrs)
        if isinstance(default, bool):
            d = self.client.get_boolean_details(key, default, ctx)
        else:
            d = self.client.get_string_details(key, default, ctx)
        assert d.error_code is None, f"{key}: {d.error_code} {d.error_message}"  # never judge a default
        return d

    def close(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def evaluate(tmp_path):
    """evaluate(flag_doc) -> FlagEvaluator over a file holding that flag set."""
    made: list[FlagEvaluator] = []

    def make(doc: dict) -> FlagEvaluator:
        path = tmp_path / f"flags-{len(made)}.json"
        path.write_text(json.dumps(doc))
        made.append(FlagEvaluator(path))
        return made[-1]

    yield make
    for ev in made:
        ev.close()


_image: dict = {}


def image_build():
    """The background image build (tests/imagebuild.py), started once per session."""
    if "proc" not in _image:
        import tempfile

        from . import imagebuild

        missing = imagebuild.missing_tools()
        if missing:
            pytest.fail(f"the image test needs {', '.join(missing)}: run .ci/install (as root)")
        log = Path(tempfile.mkdtemp(prefix="cutover-image-")) / "build.log"
        _image.update(proc=imagebuild.start(log), log=log)
    return _image["proc"], _image["log"]


@pytest.hookimpl(trylast=True)  # after -m has deselected: `make test-fast` starts no image build
def pytest_collection_modifyitems(session, config, items):
    """Start the image build at once when its test is selected, and run that test last: it takes
    minutes of mostly downloads, which overlap the rest of the suite."""
    image = [i for i in items if i.module.__name__.endswith("test_image") and "builds" in i.name]
    if image:
        items[:] = [i for i in items if i not in image] + image
        image_build()
