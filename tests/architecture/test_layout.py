"""The layout is part of the architecture: these tests keep it from drifting."""

from __future__ import annotations

import platform
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTEXTS = ("orders", "inventory", "payments", "shipping", "projections")


def test_the_platform_folder_is_a_source_root_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_import_platform_gives_the_standard_library_module():
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert callable(platform.python_version)


def test_the_platform_layer_and_project_import_under_their_own_names():
    import config.settings
    import platform_core

    assert Path(platform_core.__file__).parent == ROOT / "platform" / "platform_core"
    assert Path(config.settings.__file__).parent == ROOT / "platform" / "config"


def test_every_context_publishes_its_language_beside_its_domain():
    for context in ("orders", "inventory", "payments", "shipping"):
        for module in ("events.py", "commands.py", "domain/__init__.py", "handlers.py"):
            assert (ROOT / context / module).is_file(), f"{context}/{module}"


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
