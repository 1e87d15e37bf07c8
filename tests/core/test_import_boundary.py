"""The function app never imports the local runtime: nothing of a stand-in can be switched on in Azure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_function_app_imports_nothing_from_local_azure() -> None:
    probe = ("import sys, function_app; "
             "leaked = sorted(m for m in sys.modules if m == 'local_azure' or m.startswith(('local_azure.', 'tests')));"
             "print(leaked); sys.exit(1 if leaked else 0)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_app_module_names_the_local_runtime() -> None:
    sources = [ROOT / "function_app.py", *(ROOT / "gates").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in sources if "local_azure" in p.read_text(encoding="utf-8")]
    assert offenders == []
