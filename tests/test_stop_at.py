"""docs/stop_at.sh's `left HH:MM`, the seconds the long-run scripts give `timeout`: never 0 (no limit), and a stop
time after midnight counts from the evening before."""
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _left(when: datetime) -> int:
    out = subprocess.run(["bash", "-c", f'. docs/stop_at.sh; left {when:%H:%M}'], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return int(out.stdout)


def test_a_time_ahead_gives_the_seconds_until_it():
    assert 0 < _left(datetime.now() + timedelta(minutes=30)) <= 30 * 60


def test_a_time_just_past_gives_one_second_not_zero():
    assert _left(datetime.now() - timedelta(minutes=10)) == 1


def test_a_time_half_a_day_back_is_tomorrows():
    # 13 h ago on the clock face is 11 h ahead: e.g. 00:14 asked for at 23:56 is 18 min away, not past
    assert 10 * 3600 < _left(datetime.now() - timedelta(hours=13)) <= 11 * 3600
