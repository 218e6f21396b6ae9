"""The README's "your own experiment in ~30 lines" runs as written (issue 9: the flagship
experiment's core in public API), and says what it claims."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(title: str) -> str:
    text = README.read_text()
    section = text[text.index(title) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_your_own_experiment_runs(tmp_path, monkeypatch, capsys):
    code = _block("## Your own experiment in ~30 lines")
    assert len(code.strip().splitlines()) <= 40
    assert "gradflow._" not in code and "from gradflow." not in code  # public names only
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "modes learned in the order [0, 1, 2]" in out
    predictions = re.findall(r"learned at t = (\S+), predicted (\S+)", out)
    assert len(predictions) == 3
    for measured, predicted in predictions:  # the balanced prediction, within 2%
        assert abs(float(measured) - float(predicted)) < 0.02 * float(measured)
    assert (tmp_path / "deep-linear.nc").is_file() and (tmp_path / "flow").is_dir()
