"""What the installed distribution carries besides the code: its licence."""

from __future__ import annotations

import sysconfig
from importlib.metadata import distributions


def test_the_installed_distribution_carries_its_apache_license() -> None:
    # The one installed in this environment (a wheel, or an editable install),
    # not a source tree's .egg-info that the current directory may put first.
    site_packages = sysconfig.get_paths()["purelib"]
    installed = next(distributions(name="resilience-primitives", path=[site_packages]))
    assert installed.metadata["License-Expression"] == "Apache-2.0"
    assert installed.metadata.get_all("License-File") == ["LICENSE"]
    text = installed.read_text("licenses/LICENSE")
    assert text is not None, f"no licenses/LICENSE in the metadata installed in {site_packages}"
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a stub
    assert "Copyright 2026 resilience-primitives developers" in text
