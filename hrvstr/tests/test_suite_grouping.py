"""``make test`` keeps the tests marked ``xdist_group`` on one worker each.

xdist's ``--dist loadgroup`` groups a test by appending ``@group`` to its node id. From pytest
9.2 a node id is built from a structured id that xdist 3.8 does not touch, so the marks stopped
working without a word (pytest-dev/pytest-xdist#1386): each worker started its own Chromium
and ran its own ``check --deploy``. requirements-dev.txt pins pytest below 9.2 until that is
fixed; this test fails instead of letting an upgrade break the grouping silently again.
"""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("grouping_check")
def test_a_grouped_test_carries_its_group_under_loadgroup(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by xdist with --dist loadgroup (make test does)")
    assert request.node.nodeid.endswith("@grouping_check"), (
        f"{request.node.nodeid}: --dist loadgroup ignores xdist_group marks with this "
        "pytest and pytest-xdist (pytest-dev/pytest-xdist#1386)"
    )
