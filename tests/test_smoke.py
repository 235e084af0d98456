import subprocess
import sys

import numpy as np
import pytest

import xmhash

HEAVY = ("torch", "h5py", "scipy", "tqdm", "PIL", "matplotlib")


@pytest.mark.parametrize("statements", [
    "import xmhash",  # numpy and the native module only
    "import xmhash, xmhash.data",
    # what `import xmhash.train` and building the `xmhash` parser (every --help) load: the config, not the trainer
    "import xmhash.train, xmhash.train.cli, xmhash.cli; xmhash.cli.build_parser()",
])
def test_imports_load_no_heavy_modules(statements):
    code = f"import sys; {statements}; print(sorted(set({HEAVY!r}) & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_build_info_reports_the_isa_in_use():
    info = xmhash.build_info()
    assert info["isa"] in info["available_isas"]
    assert info["available_isas"][0] == "scalar"
    assert info["threads"] >= 1
    assert isinstance(info["cuda"], bool)
    assert info["version"] == xmhash.__version__


def test_search_one_liner():
    db = xmhash.pack(np.eye(16, dtype=bool))
    res = xmhash.search(db[:2], db, radius=2)
    assert len(res) == 2 and list(res[0][0][:1]) == [0]


def _isa_in_subprocess(env_isa):
    import os

    env = dict(os.environ, XMHASH_ISA=env_isa)
    return subprocess.run([sys.executable, "-c", "import xmhash; print(xmhash.get_isa())"], capture_output=True,
                          text=True, env=env)


def test_env_var_forces_the_code_path():
    for isa in xmhash.build_info()["available_isas"]:
        out = _isa_in_subprocess(isa)
        assert out.returncode == 0 and out.stdout.strip() == isa


def test_env_var_with_unknown_path_fails_at_import():
    out = _isa_in_subprocess("neon9")
    assert out.returncode != 0
    assert "isa must be one of 'scalar', 'avx2', 'avx512', got 'neon9'" in out.stderr
