"""A non-editable install ships templates/ and runtime/ inside the package and can compile."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import sys, numpy as np, dlc
    assert dlc.__file__.startswith(sys.prefix), dlc.__file__
    net = dlc.Sequential([dlc.Input(8), dlc.Dense(6), dlc.BatchNorm(), dlc.ReLU(),
                          dlc.Dense(3), dlc.Softmax()], dtype="float64", seed=5)
    X = np.random.default_rng(0).normal(size=(17, 8))
    got, want = dlc.compile(net).predict(X), dlc.reference(net).predict(X)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    print("installed-ok", dlc.__file__)
""")


def test_non_editable_install_compiles_a_model(tmp_path):
    source = tmp_path / "src"       # a copy, so the build writes nothing into the checkout
    for name in ("dlc", "templates", "runtime"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    # Build the wheel with this interpreter's setuptools (no network), install it into a venv
    # that sees numpy, cffi and jinja2 from here but not the checkout.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("dlc-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    env = dict(os.environ, DLC_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([str(python), "-c", SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "installed-ok" in done.stdout
    script = subprocess.run([str(venv / "bin" / "dlc"), "--version"], env=env,
                            capture_output=True, text=True)
    assert script.returncode == 0 and "dlc, version" in script.stdout, script.stderr
    installed = Path(done.stdout.split()[-1]).parent
    assert (installed / "templates" / "model.c.j2").is_file()
    assert (installed / "templates" / "ops" / "dense.c.j2").is_file()
    assert (installed / "runtime" / "gemm.h").is_file()
