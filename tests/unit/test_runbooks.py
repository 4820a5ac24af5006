from __future__ import annotations

import pytest

import runbooks


def test_runbooks_ship_as_package_data():
    assert {"alertmanager-intake", "incident-response"} <= set(runbooks.names())
    assert runbooks.read("incident-response").startswith("# Runbook")
    with pytest.raises(KeyError, match="no runbook named 'nope'"):
        runbooks.read("nope")
