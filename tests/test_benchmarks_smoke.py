"""The benchmark suite runs end to end in --quick mode and prints every table.

Nothing about speed is asserted here (CI machines vary); the numbers are checked for
being numbers, and every peer must agree with dlc before it is timed (run.py checks that).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_prints_its_tables(tmp_path):
    env = dict(os.environ, DLC_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for title in ["== machine ==", "== matrix multiply, float32, 1 thread",
                  "== small 64-32-10", "inference, float32 ==",
                  "training samples/s, float32 ==", "== mnist 784-256-256-10",
                  "== compile time"]:
        assert title in out, f"missing table {title!r} in:\n{out}"
    peak = re.search(r"= ([0-9.]+) GFLOP/s \(FMA loop", out)
    assert peak and float(peak.group(1)) > 0, out
    latency = re.search(r"batch-1 latency \(us\)\s+([0-9.]+)\s+([0-9.]+)", out)
    assert latency, f"no dlc and C-harness latency in:\n{out}"
    assert float(latency.group(1)) > 0 and float(latency.group(2)) > 0
    assert "error" not in out.split("== compile time")[0].lower(), out


def test_quick_footprint_prints_its_table(tmp_path):
    env = dict(os.environ, DLC_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "footprint.py"), "--quick"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "== footprint: small 64-32-10, float32, bytes ==" in out, out
    for target in ("host", "generic", "cortex-m0", "cortex-m4", "cortex-m7",
                   "hand-written plain loops (x86-64)"):
        assert re.search(rf"^{re.escape(target)}\s+\S.*\s\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+$",
                         out, re.M), f"no row for {target} in:\n{out}"
    latencies = re.findall(r"^generic \(x86-64\).*\s([0-9.]+)$", out, re.M)
    assert len(latencies) == 3 and all(float(us) > 0 for us in latencies), out
