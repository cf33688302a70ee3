"""Every pyproject.toml in the repository declares its licence as an SPDX string.

setuptools deprecated the ``license = { text = ... }`` table (it warns at every install,
and needs setuptools >= 77 for the string form), so each project must both use the string
and ask its build backend for a setuptools that understands it.
"""
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECTS = sorted([ROOT / "pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml"),
                     *ROOT.glob("examples/*/pyproject.toml")])


def test_all_projects_found():
    assert ROOT / "pyproject.toml" in PYPROJECTS
    assert len(PYPROJECTS) >= 8  # root + six plugins + the plugin template


@pytest.mark.parametrize("path", PYPROJECTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_license_is_an_spdx_string(path):
    data = tomllib.loads(path.read_text())
    assert isinstance(data["project"]["license"], str)
    setuptools_req = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools_req, "build-system.requires must name setuptools"
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools_req[0].replace(" ", ""))
    assert minimum and int(minimum.group(1)) >= 77, setuptools_req[0]
