"""The Docker image and compose file, checked without a Docker engine (none runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_has_the_test_verify_and_compare_services():
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert set(doc) == {"services"} and set(doc["services"]) == {"test", "verify", "compare"}
    for name, service in doc["services"].items():
        assert service["build"] == "." and service["image"] == "rmsnorm-bridge", name
        assert isinstance(service["command"], list) and all(
            isinstance(c, str) for c in service["command"]
        )
    assert doc["services"]["test"]["command"] == ["python", "-m", "pytest"]
    verify = doc["services"]["verify"]
    assert verify["command"][:2] == ["rmsnorm", "verify"]
    report = verify["command"][verify["command"].index("--report") + 1]
    mounts = [v.split(":") for v in verify["volumes"]]
    assert any(
        report.startswith(inside + "/") and outside == "./reports" for outside, inside in mounts
    )
    # compare: verify against a baseline report in ./reports, the diff written beside it
    compare = doc["services"]["compare"]["command"]
    assert compare[:2] == ["rmsnorm", "verify"] and doc["services"]["compare"]["volumes"] == [
        "./reports:/reports"
    ]
    for flag in ("--baseline", "--report", "--diff"):
        assert compare[compare.index(flag) + 1].startswith("/reports/"), flag
    # the command parses as rmsnorm verify's arguments (compose fills in ${BASELINE:-...})
    from rmsnorm_core.cli._cli import build_parser

    args = [c.replace("${BASELINE:-baseline.json}", "baseline.json") for c in compare[1:]]
    parsed = build_parser().parse_args(args)
    assert parsed.baseline == "/reports/baseline.json" and parsed.diff == "/reports/diff.json"


def test_dockerfile_runs_the_suite_with_a_compiler_and_the_readme_install():
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"ARG BASE_IMAGE=(\S+)", text).group(1)
    assert "slim" not in base and "alpine" not in base, "torch.compile needs a C++ compiler"
    assert "g++ --version" in text  # the build fails early, and says why, without one
    assert "pip install torch==2.13.0" in text and 'pip install -e ".[all,test]"' in text
    assert 'CMD ["python", "-m", "pytest"]' in text
    readme = (ROOT / "README.md").read_text()
    assert "docker compose run verify" in readme and "must already contain" in readme
