"""`make bench ONLY=...` remeasures some sections and keeps the others."""
from tools.bench.__main__ import _merge, _sections

REPORT = """# factlocate benchmarks

## Tracing

_Measured then._

| a | 1 |

## ROME

| b | 2 |
"""


def test_sections_split_on_level_two_headings():
    assert _sections(REPORT) == ["## Tracing\n\n_Measured then._\n\n| a | 1 |", "## ROME\n\n| b | 2 |"]


def test_merge_replaces_remeasured_sections_in_place_and_appends_new_ones():
    merged = _merge(_sections(REPORT), ["## ROME\n\n| b | 3 |", "## Evaluation\n\n| c | 4 |"])
    assert merged == ["## Tracing\n\n_Measured then._\n\n| a | 1 |", "## ROME\n\n| b | 3 |",
                      "## Evaluation\n\n| c | 4 |"]


def test_the_original_codes_copy_runs_on_the_models_device(tmp_path, monkeypatch):
    """tools.bench.original copies kmeng01/rome's rome/ and util/ with two changes only: its device string becomes
    the model's, and the unused matplotlib import goes; without a checkout the section keeps its earlier table."""
    from tools.bench import original

    src = tmp_path / "rome-checkout"
    for part in ("rome", "util"):
        (src / part).mkdir(parents=True)
    device = '"' + "cu" + 'da"'
    (src / "rome" / "compute_v.py").write_text(f"from matplotlib.style import context\nx = torch.zeros(2, device={device})\n")
    (src / "util" / "globals.py").write_text("y = 1\n")
    dest = original.export_original(src, tmp_path / "copy", "cpu")
    assert (dest / "rome" / "compute_v.py").read_text() == "x = torch.zeros(2, device='cpu')\n"
    assert (dest / "util" / "globals.py").read_text() == "y = 1\n" and (dest / "globals.yml").exists()
    monkeypatch.delenv(original.SRC_ENV, raising=False)
    assert original.run() is None
