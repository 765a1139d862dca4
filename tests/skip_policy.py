"""A pytest plugin: a test may be skipped only for a reason on this list.

A test of photocap's own code must never pass by skipping because photocap's module
failed to import (``pytest.importorskip("photocap...")``): that skip is turned into a
failure here. The other skips are allowed only where the tool is really missing, and in
CI (``PHOTOCAP_CI=1``, set by ``.ci/run``) only those CI itself does not install.
Loaded by ``conftest.py``; tests/test_skip_policy.py runs it on sample tests.
"""

from __future__ import annotations

import os
import re

import pytest

# reason pattern -> allowed in CI (where .ci/run installs exiftool, Java, Qt, the validators)
ALLOWED_SKIPS: dict[str, bool] = {
    r"^exiftool not installed$": False,
    r"^needs Java": False,
    r"^needs desktop-file-utils": False,
    r"^needs systemd-analyze": False,
    r"^no bundled model$": False,
    r"^could not import 'PySide6": False,
    r"^could not import 'pytestqt'": False,
    r"^could not import 'ray'": False,  # the cluster extra; CI installs it with .[test]
    r"^shared Flickr8k not here$": True,  # a data set CI does not have
    r"^root can read anything$": True,  # CI containers run as root
    r"^no process priorities here$": True,  # not POSIX
    r"^needs Linux /proc$": False,
    r"^the X11 libraries are installed here$": True,  # the missing-library case cannot happen
}
NEVER = re.compile(r"could not import 'photocap")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
    else:
        text = str(longrepr)
    return text.removeprefix("Skipped: ").strip()


def verdict(reason: str, *, ci: bool) -> str | None:
    """None if a skip for ``reason`` is allowed, else why not."""
    if NEVER.search(reason):
        return f"a test of photocap's own code was skipped because photocap failed to import: {reason}"
    for pattern, in_ci in ALLOWED_SKIPS.items():
        if re.search(pattern, reason):
            return None if (in_ci or not ci) else f"CI installs what this test needs, yet it skipped: {reason}"
    return f"skip reason not on the allowed list (tests/skip_policy.py): {reason}"


def _police(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped:
        return
    problem = verdict(_reason(report), ci=os.environ.get("PHOTOCAP_CI") == "1")
    if problem is not None:
        report.outcome = "failed"
        report.longrepr = problem


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _police(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    _police(outcome.get_result())
