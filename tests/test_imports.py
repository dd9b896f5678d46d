"""import dlc stays light: the optional dependencies load only when used."""
import subprocess
import sys


def test_import_dlc_loads_no_optional_dependency():
    code = ("import sys, dlc; heavy = [m for m in ('onnx', 'onnxruntime', 'sklearn', 'torch', "
            "'matplotlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
