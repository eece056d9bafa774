"""Shot detection on videos generated with ffmpeg, with cuts at known frames.

The videos are built from lavfi sources (test patterns, fractals, cellular automata), 25 fps,
160x120, so every boundary is exact by construction.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import typer
from typer.testing import CliRunner

from clipsieve.cli.shots import register
from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.shots.base import DEFAULT_DETECTOR, ShotResult
from clipsieve.shots.decode import FrameReader, read_frames
from clipsieve.shots.detectors import get_detector
from clipsieve.shots.stage import ShotDetectStage
from clipsieve.shots.transnet import predictions_to_cuts
from clipsieve.table import VIDEO_SCHEMA, rows_to_table

SIZE = "160x120"
SOURCES = [
    f"testsrc2=size={SIZE}:rate=25",
    f"smptebars=size={SIZE}:rate=25",
    f"mandelbrot=size={SIZE}:rate=25",
    f"life=size={SIZE}:rate=25:mold=10:ratio=0.5:life_color=#00ff00:death_color=#c83232",
]
SEG = 25  # frames per shot
HARD_CUTS = [25, 50, 75]
DETECTOR_NAMES = ["content", "adaptive", "transnet", DEFAULT_DETECTOR]


def _concat(out: Path, sources: list[str], frames: list[int], filters: list[str] | None = None):
    """Concatenate ``frames[i]`` frames of each lavfi source (with an optional filter each)."""
    args: list[str] = []
    chains: list[str] = []
    for i, src in enumerate(sources):
        args += ["-f", "lavfi", "-i", src]
        extra = f",{filters[i]}" if filters and filters[i] else ""
        chains.append(f"[{i}:v]trim=end_frame={frames[i]},setpts=PTS-STARTPTS{extra}[s{i}]")
    labels = "".join(f"[s{i}]" for i in range(len(sources)))
    graph = ";".join(chains) + f";{labels}concat=n={len(sources)}:v=1,format=yuv420p[v]"
    run_ffmpeg(
        [*args, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset",
         "ultrafast", str(out)],
        what="make test video",
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("shots")
    cuts = _concat(d / "cuts.mp4", SOURCES, [SEG] * 4)
    single = _concat(d / "single.mp4", [f"testsrc2=size={SIZE}:rate=25"], [100])
    # smptebars fades out over frames 25..39, testsrc2 fades in over its first 15 frames:
    # one dip to black spanning frames 25..54 of the result.
    fade = _concat(
        d / "fade.mp4",
        [SOURCES[0], SOURCES[1]],
        [40, 40],
        ["fade=t=out:start_frame=25:nb_frames=15", "fade=t=in:start_frame=0:nb_frames=15"],
    )
    rotated = d / "rotated.mp4"
    run_ffmpeg(
        ["-display_rotation", "90", "-i", str(cuts), "-c", "copy", str(rotated)], what="rotate"
    )
    # Drop every third frame and keep timestamps: variable frame rate, 67 decoded frames.
    vfr = d / "vfr.mp4"
    run_ffmpeg(
        ["-i", str(cuts), "-vf", "select='not(eq(mod(n\\,3)\\,2))'", "-fps_mode", "vfr",
         "-c:v", "libx264", "-preset", "ultrafast", str(vfr)],
        what="vfr",
    )  # fmt: skip
    bad = d / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    return {
        "cuts": cuts,
        "single": single,
        "fade": fade,
        "rotated": rotated,
        "vfr": vfr,
        "bad": bad,
    }


@pytest.fixture(scope="module")
def detectors() -> dict[str, object]:
    return {name: get_detector(name) for name in DETECTOR_NAMES}


def _near(found: list[int], expected: list[int], tol: int = 1) -> bool:
    return len(found) == len(expected) and all(
        abs(f - e) <= tol for f, e in zip(found, expected, strict=True)
    )


# ------------------------------------------------------------------------------------ decode


def test_reader_counts_frames_and_sizes(videos: dict[str, Path]) -> None:
    frames, info = read_frames(videos["cuts"], size=(48, 27))
    assert frames.shape == (100, 27, 48, 3) and frames.dtype == np.uint8
    assert info.width == 160 and info.height == 120 and info.fps == pytest.approx(25.0)
    reader = FrameReader(videos["cuts"], width=64)
    assert reader.size == (64, 48)
    assert [i for i, _ in reader] == list(range(100)) and reader.num_frames == 100


def test_reader_gives_up_after_its_timeout(videos: dict[str, Path]) -> None:
    """A decode slower than its budget ends with a one-line DecodeError, not a hang."""
    from clipsieve.shots.decode import DecodeError, default_decode_timeout

    reader = FrameReader(videos["cuts"], width=64)
    assert reader.timeout_s == pytest.approx(default_decode_timeout(reader.info))
    assert reader.timeout_s == pytest.approx(120 + 4 * 100 / 25)
    with pytest.raises(DecodeError, match="timed out"):
        list(FrameReader(videos["cuts"], width=64, timeout_s=1e-6))


def test_reader_decodes_every_vfr_frame(videos: dict[str, Path]) -> None:
    frames, _ = read_frames(videos["vfr"], size=(48, 27))
    assert len(frames) == 67  # 100 frames minus every third one (n % 3 == 2)


# --------------------------------------------------------------------------------- detectors


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_hard_cuts_found_exactly(name: str, videos: dict[str, Path], detectors) -> None:
    result = detectors[name].detect(videos["cuts"])
    assert isinstance(result, ShotResult)
    assert result.num_frames == 100 and result.fps == pytest.approx(25.0)
    assert _near(result.cuts, HARD_CUTS), result.cuts


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_single_moving_shot_has_no_cuts(name: str, videos: dict[str, Path], detectors) -> None:
    assert detectors[name].detect(videos["single"]).cuts == []


def test_dip_to_black_is_one_boundary_at_its_start(videos: dict[str, Path], detectors) -> None:
    # (TransNetV2 alone does not fire on this synthetic fade: the default detector's
    # brightness-ramp logic is what finds it.)
    cuts = detectors[DEFAULT_DETECTOR].detect(videos["fade"]).cuts
    assert len(cuts) == 1 and abs(cuts[0] - 25) <= 2, cuts


@pytest.mark.parametrize("name", ["content", DEFAULT_DETECTOR])
def test_rotated_and_vfr_inputs(name: str, videos: dict[str, Path], detectors) -> None:
    rotated = detectors[name].detect(videos["rotated"])
    assert rotated.num_frames == 100 and _near(rotated.cuts, HARD_CUTS)
    # In the VFR copy original frame n is decoded index n - n // 3 (frames n % 3 == 2 dropped).
    vfr = detectors[name].detect(videos["vfr"])
    assert vfr.num_frames == 67
    assert _near(vfr.cuts, [c - c // 3 for c in HARD_CUTS]), vfr.cuts


def test_transnet_keeps_global_random_state() -> None:
    import torch

    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    get_detector("transnet")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert not torch.are_deterministic_algorithms_enabled()


def test_predictions_to_cuts_conventions() -> None:
    probs = np.zeros(60, np.float32)
    probs[9] = 0.9  # hard cut: last frame of the old shot fires -> new shot starts at 10
    probs[30:40] = 0.8  # gradual: a long run -> reported at its first frame
    assert predictions_to_cuts(probs) == [10, 30]


def test_unknown_detector_and_params() -> None:
    with pytest.raises(ValueError, match="unknown shot detector 'nope'"):
        get_detector("nope")
    with pytest.raises(ValueError, match="shot detector 'content'"):
        get_detector("content", bogus=1)


# ------------------------------------------------------------------------------------ stage


def test_stage_adds_cuts_and_decoded_count(videos: dict[str, Path]) -> None:
    rows = [
        {"video_id": "a", "path": str(videos["cuts"]), "status": "ok", "num_frames": 99},
        {"video_id": "b", "path": str(videos["bad"]), "status": "ok"},
        {"video_id": "c", "path": "x.mp4", "status": "error", "error": "probe: broken"},
    ]
    stage = ShotDetectStage(detector="content")
    stage.setup()
    out = stage.process(rows_to_table(rows, VIDEO_SCHEMA)).to_pylist()
    assert out[0]["cuts"] == HARD_CUTS and out[0]["shot_detector"] == "content"
    assert out[0]["num_frames"] == 100 and out[0]["num_frames_decoded"] == 100
    assert out[1]["status"] == "error" and out[1]["error"].startswith("shots: cannot open")
    assert out[2]["error"] == "probe: broken" and out[2]["cuts"] is None
    assert isinstance(stage.process(rows_to_table(rows[:1], VIDEO_SCHEMA)), pa.Table)


# ---------------------------------------------------------------------------------- command


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command so typer keeps sub-command names
        """Unused."""

    return app


def test_detect_shots_json_lines(videos: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        _app(),
        ["detect-shots", str(videos["cuts"]), str(videos["single"]), "--detector", "content",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {"video": str(videos["cuts"]), "fps": 25.0, "num_frames": 100, "cuts": HARD_CUTS},
        {"video": str(videos["single"]), "fps": 25.0, "num_frames": 100, "cuts": []},
    ]


def test_detect_shots_bad_video_is_one_error_line(videos: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        _app(),
        ["detect-shots", str(videos["bad"]), str(videos["cuts"]), "-d", "content", "--json"],
    )
    assert result.exit_code == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["video"] == str(videos["bad"]) and "cannot open" in first["error"]
    assert "\n" not in first["error"] and second["cuts"] == HARD_CUTS


def test_detect_shots_table_and_bad_detector(videos: dict[str, Path]) -> None:
    runner = CliRunner()
    result = runner.invoke(_app(), ["detect-shots", str(videos["cuts"]), "-d", "content"])
    assert result.exit_code == 0 and "25, 50, 75" in result.stdout
    result = runner.invoke(_app(), ["detect-shots", str(videos["cuts"]), "-d", "nope"])
    assert result.exit_code == 2


def test_hybrid_in_chunks_equals_one_pass(videos: dict[str, Path], monkeypatch) -> None:
    """Long videos are detected in overlapping chunks; the cuts equal a single pass."""
    from clipsieve.shots import hybrid

    detector = get_detector("hybrid")
    whole = detector.detect(videos["cuts"])
    monkeypatch.setattr(hybrid, "CHUNK_FRAMES", 30)
    monkeypatch.setattr(hybrid, "OVERLAP_FRAMES", 20)
    chunked = detector.detect(videos["cuts"])
    assert chunked.num_frames == whole.num_frames == 100
    assert chunked.cuts == whole.cuts and whole.cuts


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 shots of 60 frames (cuts at 60, 120, ... 420), keyframes every 250 frames."""
    out = tmp_path_factory.mktemp("long") / "long.mp4"
    return _concat(out, [SOURCES[i % 4] for i in range(8)], [60] * 8)


def test_reader_range_equals_the_slice_of_a_whole_read(long_video: Path) -> None:
    whole = list(FrameReader(long_video, size=(48, 36)))
    assert len(whole) == 480
    part = FrameReader(long_video, size=(48, 36), start_frame=290, end_frame=330)
    got = list(part)  # starts after the keyframe at 250: decoded from there, numbered by time
    assert [i for i, _ in got] == list(range(290, 330)) and part.num_frames == 40
    for (i, image), (j, expected) in zip(got, whole[290:330], strict=True):
        assert i == j and np.array_equal(image, expected)
    tail = list(FrameReader(long_video, size=(48, 36), start_frame=470))
    assert [i for i, _ in tail] == list(range(470, 480))


@pytest.mark.parametrize("name", ["transnet", DEFAULT_DETECTOR])
def test_segmented_detection_equals_whole_detection(long_video: Path, name, monkeypatch) -> None:
    from clipsieve.shots import stage as stage_module

    monkeypatch.setattr(stage_module, "SEGMENT_OVERLAP_FRAMES", 30)
    row = {"video_id": "v", "path": str(long_video), "fps": 25.0, "num_frames": 480}
    whole = ShotDetectStage(detector=name, segment_s=None)
    split = ShotDetectStage(detector=name, segment_s=4.8)  # 120 frames: edges on cuts
    assert split.segments(row) == [(0, 120), (120, 240), (240, 360), (360, None)]
    expected = whole.process_row(dict(row))
    got = split.process_row(dict(row))
    assert expected["cuts"] == [60, 120, 180, 240, 300, 360, 420]
    assert got["cuts"] == expected["cuts"]
    assert got["num_frames_decoded"] == expected["num_frames_decoded"] == 480
    # never split: short videos, variable frame rate, unknown length
    assert split.segments({**row, "num_frames": 200}) == []
    assert split.segments({**row, "vfr": True}) == []
    assert split.segments({**row, "num_frames": None}) == []
    # PySceneDetect's detectors carry state from their first frame: never split
    assert ShotDetectStage(detector="content", segment_s=4.8).segments(row) == []
    # a tail shorter than half a segment joins the previous one
    assert split.segments({**row, "num_frames": 410})[-1] == (240, None)


def test_engine_runs_segments_as_tasks_and_gets_the_whole_result(long_video: Path) -> None:
    """The local engine's split path (video task → segment tasks → tail task) == one task."""
    from clipsieve.config import RunConfig
    from clipsieve.engine.tasks import run_segment_task, run_video_tail, run_video_task
    from clipsieve.ingest.folder import ingest_rows
    from clipsieve.pipeline import build_pipeline

    config = RunConfig()
    config.score.scorers = []
    config.cut.enabled = False
    config.shots.segment_s = 6.0  # the default (hybrid) detector
    pipeline = build_pipeline(config, long_video.parent / "run")
    for stage in pipeline.stages:
        stage.setup()
    row = ingest_rows([str(long_video)])[0]
    head = run_video_task(pipeline, row, split=True)
    assert head.split is not None and len(head.split.segments) == 3
    parts = [
        run_segment_task(pipeline, row["video_id"], head.split, head.videos, i).part
        for i in range(len(head.split.segments))
    ]
    tail = run_video_tail(pipeline, row["video_id"], head.split, head.videos, parts)
    serial = run_video_task(pipeline, row)  # the stage runs its segments one after another
    assert tail.split is None and serial.split is None
    assert tail.videos.to_pylist() == serial.videos.to_pylist()
    assert tail.planned.to_pylist() == serial.planned.to_pylist()
    assert tail.videos.column("cuts").to_pylist()[0] == [60, 120, 180, 240, 300, 360, 420]
    # a failed segment fails the video's row with its reason, like a whole detection would
    broken = run_video_tail(pipeline, row["video_id"], head.split, head.videos,
                            [*parts[:-1], {"error": "decoder exploded"}])  # fmt: skip
    video = broken.videos.to_pylist()[0]
    assert video["status"] == "error" and video["error"] == "shots: decoder exploded"


def _textured(seed: int, h: int = 27, w: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.float32)


def test_a_cross_fade_is_a_blend_and_camera_motion_is_not() -> None:
    """The cheap dissolve test: a cross-fade's frames are mixes of its ends (residual ~0),
    a pan over a textured picture is not, so the model is only asked about the first."""
    from clipsieve.shots.hybrid import blend_residual

    a, b = _textured(1), _textured(2)
    fade = np.stack([a] * 6 + [(1 - w) * a + w * b for w in np.linspace(0, 1, 16)] + [b] * 6)
    big = np.random.default_rng(3).integers(0, 256, (27, 120, 3)).astype(np.uint8)
    pan = np.stack([big[:, 2 * i : 2 * i + 48] for i in range(28)])
    assert blend_residual(fade.round().astype(np.uint8), 0, len(fade) - 1) < 0.05
    assert blend_residual(pan, 0, len(pan) - 1) > 0.3


def test_span_predictions_match_the_package_windows() -> None:
    """TransNetV2 over long spans (125 predicted frames per window) gives the probabilities of
    the package's 100-frame windows, and ranges in doubt are predicted, the rest left at 0."""
    from clipsieve.shots.transnet import load_transnet, merge_spans, predict, predict_spans

    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (2, 1, 27, 48, 3))
    shots = [np.broadcast_to(p, (n, 27, 48, 3)) for p, n in zip(pictures, (70, 90), strict=True)]
    frames = np.ascontiguousarray(np.concatenate(shots)).astype(np.uint8)
    model = load_transnet()
    whole = predict(model, frames)
    spans = predict_spans(model, frames, [(0, len(frames))])
    assert np.abs(whole - spans).max() < 0.05 and spans[68:72].max() > 0.5
    some = predict_spans(model, frames, [(45, 95)])  # as the hybrid asks: 50 around a cut
    assert np.all(some[:45] == 0) and np.all(some[95:] == 0) and some[68:72].max() > 0.5
    assert merge_spans([(5, 10), (40, 50), (200, 210), (-3, 2)], 205) == [(0, 50), (200, 205)]


def test_faster_layers_give_the_package_model_s_probabilities() -> None:
    """The swapped temporal convolutions and pools compute what the package's layers do, on one
    thread (where PyTorch would take its slow convolution path) and in bfloat16 autocast."""
    import torch

    from clipsieve.shots.transnet import (
        _plain_transnet_class,
        _preserve_random_state,
        load_transnet,
    )
    from clipsieve.shots.transnet_layers import HalveSpatially, TemporalConv, use_fast_cpu_layers

    with _preserve_random_state():  # building layers draws from torch's global generator
        conv = torch.nn.Conv3d(6, 4, (3, 1, 1), dilation=(2, 1, 1), padding=(2, 0, 0))
        package = _plain_transnet_class()(device="cpu").eval()
        assert use_fast_cpu_layers(_plain_transnet_class()(device="cpu")) == 27  # 24 convs, 3 pools
    pool = torch.nn.AvgPool3d((1, 2, 2))
    # odd height and width: the pool drops the last row/column
    x = torch.randn(1, 6, 9, 7, 5, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.allclose(TemporalConv(conv)(x), conv(x), atol=1e-5)
        assert torch.equal(HalveSpatially()(x), pool(x))
    with pytest.raises(ValueError, match="k, 1, 1"):
        TemporalConv(torch.nn.Conv3d(6, 4, 3))

    model = load_transnet()
    assert use_fast_cpu_layers(model) == 0  # already swapped
    frames = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (1, 60, 27, 48, 3)))
    frames = frames.to(torch.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            fast, _ = model.predict_raw(frames)
            slow, _ = package.predict_raw(frames)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                fast_half, _ = model.predict_raw(frames)
    finally:
        torch.set_num_threads(threads)
    assert (fast - slow).abs().max() < 1e-5
    assert (fast_half.float() - slow).abs().max() < 0.02


def test_model_precision_is_a_recorded_choice() -> None:
    """The hybrid detector asks for bfloat16 where the CPU has it (close calls re-checked in
    float32), the full TransNetV2 pass for float32; a bad value is refused when the detector is
    built, before any video."""
    from clipsieve.shots.transnet import use_bfloat16

    assert get_detector("hybrid").params()["precision"] == "auto"
    assert get_detector("transnet").params()["precision"] == "float32"
    assert get_detector("hybrid", precision="bfloat16").params()["precision"] == "bfloat16"
    assert use_bfloat16("float32") is False and use_bfloat16("bfloat16") is True
    assert isinstance(use_bfloat16("auto"), bool)
    with pytest.raises(ValueError, match="precision"):
        get_detector("hybrid", precision="fp8")


def test_bfloat16_probabilities_stay_close_to_float32() -> None:
    from clipsieve.shots.transnet import load_transnet, predict

    rng = np.random.default_rng(1)
    pictures = rng.integers(0, 256, (2, 1, 27, 48, 3))
    shots = [np.broadcast_to(p, (n, 27, 48, 3)) for p, n in zip(pictures, (40, 60), strict=True)]
    frames = np.ascontiguousarray(np.concatenate(shots)).astype(np.uint8)
    model = load_transnet()
    full, half = predict(model, frames), predict(model, frames, bfloat16=True)
    assert np.abs(full - half).max() < 0.02 and half[38:42].max() > 0.5


def test_bfloat16_close_calls_are_decided_in_float32(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bfloat16 probability near a threshold is recomputed in float32 in the same model
    window (that window only), so the decision is the one a float32 run makes."""
    from clipsieve.shots import transnet
    from clipsieve.shots.hybrid import HybridDetector
    from clipsieve.shots.transnet import predict_spans, span_windows

    monkeypatch.setattr(transnet, "MAX_PREDICTED", 40)  # several windows in this short video
    frames = np.stack([image for _, image in FrameReader(videos["cuts"], size=(48, 27))])
    mid = len(frames) // 2
    detector = HybridDetector(precision="bfloat16")
    needs = [(0, len(frames))]
    reference = predict_spans(detector._load(), frames, needs)  # float32
    fast = detector._predict_spans(frames, needs, [], [])  # nothing in doubt: all bfloat16
    assert np.abs(fast - reference).max() < 0.02
    peak = mid - 2 + int(reference[mid - 2 : mid + 2].argmax())
    detector.threshold = float(reference[peak])  # a close call at mid
    mixed = detector._predict_spans(frames, needs, [mid], [])
    windows = span_windows(needs, len(frames))
    assert len(windows) > 1  # the other windows stay bfloat16
    for a, b in windows:
        assert np.array_equal(mixed[a:b], (reference if a <= peak < b else fast)[a:b])
