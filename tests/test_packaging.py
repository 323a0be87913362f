"""A stranger's install: 'pip install .' (not editable) into a fresh venv,
then the README's quickstart question, answered from the corpus shipped in
the wheel, and the seed evaluation from the eval set shipped in it.

Slow (it installs every dependency from the package index): not in the
default run; CI runs it (pytest -m "slow or not slow").
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

QUESTION = "湖北为基层配备了多少名大学生乡村医生？"


@pytest.mark.slow
def test_a_non_editable_install_answers_the_quickstart(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    # Not editable: the files must come from the wheel, not from this checkout.
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", f"{REPO}[plot]"], check=True, timeout=1800)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WENDA_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()

    def wenda(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([bin_dir / "wenda", *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=900)

    shipped = subprocess.run([bin_dir / "python", "-c", "import service, pathlib; "
                              "print(pathlib.Path(service.__file__).parent / 'corpus')"],
                             cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert not shipped.startswith(str(REPO))
    r = wenda("ask", QUESTION)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"No index at .wenda/index; building it from {shipped} ...",
                                     "Indexed 2 articles, 42 passages."]
    assert r.stdout.splitlines()[0] == "大学生乡村医生4777人"
    r = wenda("eval", "--limit", "3", "--modes", "bm25", "--out", "results")
    assert r.returncode == 0, r.stderr
    assert (work / "results" / "seed-limit3.json").is_file()
