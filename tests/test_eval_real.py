"""`retina eval` on real clips: the truth-file format, the matching, and a run on the shared footage."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from retina.services.cli.real_eval import match_intervals, parse_truth_file
from retina.services.core.config import ConfigError
from tests.conftest import REPO, VIDEOS, footage, python_cli

TRUTH_FILE = REPO / "examples" / "real_clips.yaml"


def _truth(**clip_changes) -> dict:
    clip = {
        "name": "kerb",
        "video": "intersection.mp4",
        "zones": [{"name": "kerb", "polygon": [[0, 0.5], [0.3, 0.5], [0, 1]], "rules": ["illegal_parking"]}],
        "truth": [{"rule": "illegal_parking", "zone": "kerb", "object": "car", "start_seconds": 0,
                   "end_seconds": 20}],
    }  # fmt: skip
    return {"clips": [{**clip, **clip_changes}]}


def test_the_example_truth_file_is_valid():
    spec = parse_truth_file(yaml.safe_load(TRUTH_FILE.read_text()))
    assert {c.name for c in spec.clips if not c.truth} >= {"crosswalk-people", "sidewalk-shopfront"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"truth": [{"rule": "illegal_parking", "zone": "kerbside", "object": "car", "start_seconds": 0,
                     "end_seconds": 5}]},
         r"clips\[0\]\.truth\[0\]\.zone: 'kerbside' is not a zone of clip 'kerb' \(zones: kerb\)"),
        ({"truth": [{"rule": "crowd_gathering", "zone": "kerb", "object": "crowd", "start_seconds": 0,
                     "end_seconds": 5}]},
         r"clips\[0\]\.truth\[0\]\.rule: 'crowd_gathering' is not enabled in zone 'kerb'"),
        ({"zones": [{"name": "kerb", "polygon": [[0, 0], [1, 0], [1, 1]], "rules": ["double_parking"]}],
          "truth": []},
         r"clips\[0\]\.zones\[0\]\.rules: unknown rule 'double_parking' \(known: .*illegal_parking"),
        ({"truth": [{"rule": "illegal_parking", "zone": "kerb", "object": "car", "start_seconds": 9,
                     "end_seconds": 5}]},
         r"clips\[0\]\.truth\[0\]: .*end_seconds must be after start_seconds"),
    ],
)  # fmt: skip
def test_a_wrong_truth_file_names_the_field(change: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        parse_truth_file(_truth(**change))


def test_file_wide_params_are_validated_against_the_rule():
    with pytest.raises(ConfigError, match=r"params\.illegal_parking\.dwell_secs: unknown field"):
        parse_truth_file({**_truth(), "params": {"illegal_parking": {"dwell_secs": 10}}})
    with pytest.raises(ConfigError, match=r"params\.parking: unknown rule"):
        parse_truth_file({**_truth(), "params": {"parking": {}}})


def test_matching_wants_the_start_within_tolerance_and_counts_duplicates():
    situation = [(0.0, 20.0, 5.0)]  # stands from 0 to 20 s; with a 10 s dwell it should open at 10 s
    assert match_intervals(situation, [(12.0, 20.0)], dwell=10) == (1, 0, 0, [2.0])
    assert match_intervals(situation, [(17.0, 20.0)], dwell=10) == (0, 1, 1, [])  # 7 s late
    assert match_intervals(situation, [(25.0, 30.0)], dwell=10) == (0, 1, 1, [])  # after it ended
    assert match_intervals(situation, [(10.0, 15.0), (11.0, 20.0)], dwell=10) == (1, 1, 0, [0.0])
    assert match_intervals([], [(3.0, 4.0)], dwell=10) == (0, 1, 0, [])


def _table_row(table: str, rule: str) -> list[str]:
    row = re.search(rf"^{rule}\s+(.*)$", table, re.MULTILINE)
    assert row, f"no row for {rule} in\n{table}"
    return row.group(1).split()


NEGATIVES = ("crosswalk-people", "sidewalk-shopfront")


@pytest.fixture(scope="module")
def real_table() -> str:
    """The table `retina eval` prints for the kerb-car clip and the two negative clips."""
    for name in ("intersection.mp4", "crosswalk_people.mp4", "sidewalk_shopfront.mp4"):
        footage(name)
    clips = [arg for name in ("intersection", *NEGATIVES) for arg in ("--clip", name)]
    command = python_cli("eval", str(TRUTH_FILE), "--videos", str(VIDEOS), *clips)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _incidents_on(table: str, clip: str) -> list[str]:
    line = re.search(rf"^{clip}\s+0/0\s+(.*)$", table, re.MULTILINE)
    assert line, f"no line for the negative clip {clip}\n{table}"
    return [] if line.group(1) == "-" else line.group(1).split("; ")


@pytest.mark.slow
def test_real_clips_find_the_kerb_car_and_nothing_on_the_negatives(real_table: str):
    table = real_table
    assert table.startswith("rule               precision  recall     F1   TP   FP   FN start err s")
    *_, tp, fp, fn, start_error = _table_row(table, "illegal_parking")
    assert (tp, fp, fn) == ("1", "0", "0"), table  # the dark car at the lower-left kerb, once
    assert float(start_error) <= 2.0, table
    assert re.search(r"^intersection\s+1/1\s+illegal_parking kerb-lower-left ", table, re.MULTILINE), table
    for rule in ("crowd_gathering", "street_vending", "non_motor_parking"):
        assert _table_row(table, rule)[4] == "0", f"{rule}: a false alarm\n{table}"
    for clip in NEGATIVES:
        raised = [i for i in _incidents_on(table, clip) if not i.startswith("exposed_trash ")]
        assert not raised, f"the negative clip {clip} raised {raised}"


@pytest.mark.slow
def test_exposed_trash_raises_nothing_on_the_negatives(real_table: str):
    for clip in NEGATIVES:
        assert not _incidents_on(real_table, clip), f"the negative clip {clip} raised incidents"


def test_clip_selection_names_an_unknown_clip():
    command = python_cli("eval", str(TRUTH_FILE), "--clip", "roundabout")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--clip: no clip 'roundabout'" in result.stderr


def test_a_missing_clip_is_named_before_anything_runs(tmp_path):
    command = python_cli("eval", str(TRUTH_FILE), "--videos", str(tmp_path), "--clip", "parking-lot")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"clips[4].video: not found: {tmp_path / 'parking_lot.mp4'}" in result.stderr
