"""Length policy: shot bounds, min/max, even and fixed splitting, trimming, dropped rows."""

from __future__ import annotations

import pyarrow as pa
import pytest

from clipsieve.shots.policy import (
    DROP_SHORT_TAIL,
    DROP_TOO_SHORT,
    ClipPlanStage,
    plan_pieces,
    shot_bounds,
)
from clipsieve.table import VIDEO_SCHEMA, rows_to_table


def test_shot_bounds_ignore_out_of_range_and_duplicate_cuts():
    assert shot_bounds([0, 10, 10, 25, 99], 30) == [(0, 10), (10, 25), (25, 30)]
    assert shot_bounds([], 5) == [(0, 5)]


def test_short_shots_are_dropped_with_reason_and_long_shots_split_evenly():
    # 25 fps: shot 0 = 1 s (too short), shot 1 = 4 s, shot 2 = 25 s (split into 3 even pieces)
    pieces = plan_pieces([25, 125], 750, 25.0, min_s=2.0, max_s=10.0)
    assert pieces[0].drop_reason == DROP_TOO_SHORT
    assert (pieces[0].start_frame, pieces[0].end_frame) == (0, 25)
    assert (pieces[1].start_frame, pieces[1].end_frame, pieces[1].drop_reason) == (25, 125, None)
    long = [p for p in pieces if p.shot_index == 2]
    assert [p.piece for p in long] == [0, 1, 2]
    assert long[0].start_frame == 125 and long[-1].end_frame == 750
    lengths = [p.end_frame - p.start_frame for p in long]
    assert max(lengths) - min(lengths) <= 1
    assert all(n <= 250 for n in lengths)
    # pieces tile the shot exactly: nothing lost
    assert all(a.end_frame == b.start_frame for a, b in zip(long, long[1:], strict=False))


def test_even_split_keeps_what_easyanimate_would_drop():
    # 10.5 s shot: EasyAnimate keeps 10 s and drops a 0.5 s tail; even split keeps all of it.
    pieces = plan_pieces([], 263, 25.0, min_s=2.0, max_s=10.0)
    assert [(p.start_frame, p.end_frame) for p in pieces] == [(0, 131), (131, 263)]
    assert all(p.drop_reason is None for p in pieces)


def test_fixed_split_drops_short_tail_with_reason():
    pieces = plan_pieces([], 263, 25.0, min_s=2.0, max_s=10.0, split="fixed")
    assert [(p.start_frame, p.end_frame, p.drop_reason) for p in pieces] == [
        (0, 250, None),
        (250, 263, DROP_SHORT_TAIL),
    ]


def test_trim_only_at_detected_boundaries():
    pieces = plan_pieces([100], 200, 25.0, min_s=1.0, max_s=None, trim_frames=3)
    assert [(p.start_frame, p.end_frame) for p in pieces] == [(0, 97), (103, 200)]


def test_trim_that_makes_a_shot_too_short_drops_it_with_its_full_span():
    pieces = plan_pieces([50, 54], 200, 25.0, min_s=0.1, max_s=None, trim_frames=3)
    middle = pieces[1]
    assert (middle.start_frame, middle.end_frame, middle.drop_reason) == (50, 54, DROP_TOO_SHORT)


def test_no_split_when_max_is_none():
    pieces = plan_pieces([], 10_000, 25.0, min_s=2.0, max_s=None)
    assert [(p.start_frame, p.end_frame) for p in pieces] == [(0, 10_000)]


@pytest.mark.parametrize("fps", [23.976, 29.97, 30.0, 50.0])
def test_every_kept_piece_obeys_min_and_max(fps):
    num_frames = int(fps * 95)
    cuts = [int(fps * t) for t in (1.0, 3.5, 14.0, 15.2, 40.0, 60.5)]
    for piece in plan_pieces(cuts, num_frames, fps, min_s=2.0, max_s=10.0):
        seconds = (piece.end_frame - piece.start_frame) / fps
        if piece.drop_reason is None:
            assert 2.0 - 1e-6 <= seconds <= 10.0 + 1e-6
        else:
            assert seconds < 2.0


def test_plan_stage_builds_clip_rows_and_skips_failed_videos():
    videos = rows_to_table(
        [
            {
                "video_id": "a-1",
                "path": "/x/a.mp4",
                "status": "ok",
                "fps": 25.0,
                "num_frames": 300,
                "width": 640,
                "height": 360,
                "cuts": [30],
                "shot_detector": "content",
            },
            {"video_id": "b-2", "path": "/x/b.mp4", "status": "error", "error": "probe: empty"},
        ],
        VIDEO_SCHEMA,
    )
    clips = ClipPlanStage(min_s=2.0, max_s=10.0).process(videos).to_pylist()
    assert [c["clip_id"] for c in clips] == ["a-1_0000_0", "a-1_0001_0", "a-1_0001_1"]
    first, second = clips[0], clips[1]
    assert (first["keep"], first["drop_reason"]) == (False, DROP_TOO_SHORT)
    assert second["start_frame"] == 30 and second["end_frame"] == 165
    assert second["start_s"] == pytest.approx(1.2)
    assert second["aspect_ratio"] == pytest.approx(360 / 640)
    assert second["resolution"] == 640 * 360
    assert second["source_path"] == "/x/a.mp4" and second["path"] is None
    assert isinstance(ClipPlanStage().process(videos), pa.Table)
