"""The function app never imports the local runtime: nothing of a stand-in can be switched on in Azure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SETTINGS = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]


def test_importing_the_function_app_imports_nothing_from_local_azure() -> None:
    probe = ("import sys, function_app; "
             "leaked = sorted(m for m in sys.modules if m == 'local_azure' or m.startswith(('local_azure.', 'tests')));"
             "print(leaked); sys.exit(1 if leaked else 0)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False, env={**os.environ, **EXAMPLE_SETTINGS})
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_app_module_names_the_local_runtime() -> None:
    sources = [ROOT / "function_app.py", *(ROOT / "gates").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in sources if "local_azure" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_the_function_app_does_not_start_without_a_required_setting_and_names_it() -> None:
    settings = {k: v for k, v in EXAMPLE_SETTINGS.items() if k != "GATES_PUBLIC_BASE_URL"}
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATES_")} | settings
    result = subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False, env=environment)
    assert result.returncode != 0
    assert "GATES_PUBLIC_BASE_URL is required" in result.stderr
