"""The report's warehouses, built by the real pipeline from the sandbox once per test session
(per xdist worker) and only read afterwards: a clean one and one with every anomaly injected."""

from __future__ import annotations

import pytest

from tests.report.reportdata import Built, build


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> Built:
    return build(tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="session")
def anomalous(tmp_path_factory) -> Built:
    return build(tmp_path_factory.mktemp("anomalous"), anomalies=True)
