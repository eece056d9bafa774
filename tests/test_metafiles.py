"""Metafile readers (every format, built tiny in tmp_path), their one-line errors under fuzzing,
and the span → clip planning that replaces shot detection for metafile runs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clipsieve.cli.ingest import register_ingest_meta
from clipsieve.ingest.metafiles import (
    MetafileError,
    make_meta_video_id,
    parse_range,
    parse_time,
    read_metafile,
    sniff_format,
    youtube_id,
)
from clipsieve.ingest.spans import SpanPlanStage, ingest_metafile, plan_clips_from_spans
from clipsieve.media.ffmpeg import run_ffmpeg
from clipsieve.table import VIDEO_SCHEMA, rows_to_table

HDVG = {
    "44ot5_2UaaU": {
        "url": "https://www.youtube.com/watch?v=44ot5_2UaaU",
        "clip": {
            "44ot5_2UaaU.11.mp4": {
                "span": ["00:03:03.520", "00:03:16.569"],
                "fps": 25.0,
                "scene_split": [
                    {"scene_cut": [30, 86], "clip_id": "44ot5_2UaaU.11_1", "caption": "a man"},
                    {"scene_cut": [0, 30], "clip_id": "44ot5_2UaaU.11_0", "caption": "a pan"},
                ],
            },
            "44ot5_2UaaU.3.mp4": {
                "span": ["00:00:44.100", "00:01:11.700"],
                "fps": 25.0,
                "scene_split": [{"scene_cut": [0, -1], "clip_id": "44ot5_2UaaU.3_0"}],
            },
        },
    },
    "-x_y": {
        "url": "https://youtu.be/abcdefghijk",
        "clip": {
            "-x_y.0.mp4": {
                "span": ["0:00:01", "0:00:03"],
                "fps": 10,
                "scene_split": [{"scene_cut": [0, 20], "clip_id": "-x_y.0_0", "caption": "c"}],
            }
        },
    },
}

PANDA = (
    "videoID,url,timestamp,caption,matching_score,desirable_filtering\n"
    "--1ApFKwvjE,https://www.youtube.com/watch?v=--1ApFKwvjE,"
    "\"[['0:00:00.000', '0:00:04.480'], ['0:00:04.480', '0:00:07.000'], "
    "['0:01:00.000', '0:01:02.500']]\","
    '"[\'A race track.\', ""A man\'s car."", \'The end.\']","[0.45, 0.5, 0.31]",desirable\n'
)

WEBVID = (
    "videoid,name,page_idx,page_dir,duration,contentUrl\n"
    "1053841541,Travel blogger on a mountain,27732,027701_027750,PT00H00M17S,"
    "https://ak.picdn.net/shutterstock/videos/1053841541/preview/stock-footage-travel.mp4\n"
    '5641526,"Horse grazing, green screen",28620,054101_054150,PT00H01M04.5S,'
    "https://ak.picdn.net/shutterstock/videos/5641526/preview/stock-footage-horse.mp4\n"
)

MSRVTT = [
    {"video": "video7010.mp4", "caption": [f"caption {i}" for i in range(20)]},
    {"video": "eyhzdC936uk_15_27.avi", "caption": ["a dog"]},
]

OPENSORA = (
    "path,text,num_frames,height,width,aspect_ratio,fps,resolution\n"
    "clips/a.mp4,a red square,50,64,96,0.667,25,6144\n"
    "/abs/b.mp4,,,,,,,\n"
)

URLS = (
    "# a comment\n\nhttps://www.youtube.com/watch?v=jLX0D8qQUBM&t=3\n"
    "https://example.com/media/My%20Clip.mp4\nlocal/file.mkv\n"
)


def _write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- readers


def test_hdvg(tmp_path: Path) -> None:
    meta = read_metafile(_write(tmp_path, "h.json", HDVG))
    assert meta.format == "hdvg" and meta.total_videos == 2
    first, second = meta.videos
    assert first.video_id == "44ot5_2UaaU" and second.video_id == "-x_y"
    assert [s.number for s in first.sections] == [11, 3]
    assert first.sections[0].start_s == pytest.approx(183.52)
    spans = {s.span_id: s for s in first.spans}
    man = spans["44ot5_2UaaU.11_1"]
    assert man.start_s == pytest.approx(183.52 + 30 / 25) and man.end_s == pytest.approx(
        183.52 + 86 / 25
    )
    assert (man.section, man.caption, man.caption_dataset) == (11, "a man", "hdvg")
    assert man.end_frame - man.start_frame == 56
    whole = spans["44ot5_2UaaU.3_0"]
    assert (whole.start_s, whole.end_s) == pytest.approx((44.1, 71.7))
    assert whole.caption is None and whole.caption_dataset is None
    # A scene ending past its clip span widens the section so the download holds it.
    assert second.sections[0].end_s == pytest.approx(3.0)
    assert second.spans[0].end_s == pytest.approx(3.0)


def test_hdvg_scene_past_span_and_anchor(tmp_path: Path) -> None:
    data = json.loads(json.dumps(HDVG))
    data["-x_y"]["clip"]["-x_y.0.mp4"]["scene_split"][0]["scene_cut"] = [0, 30]
    path = _write(tmp_path, "h.json", data)
    start = read_metafile(path).videos[1]
    assert (start.sections[0].start_s, start.sections[0].end_s) == pytest.approx((1.0, 4.0))
    end = read_metafile(path, hdvg_anchor="end").videos[1]
    assert (end.spans[0].start_s, end.spans[0].end_s) == pytest.approx((0.0, 3.0))
    assert (end.sections[0].start_s, end.sections[0].end_s) == pytest.approx((0.0, 3.0))
    with pytest.raises(MetafileError, match="--hdvg-anchor"):
        read_metafile(path, hdvg_anchor="middle")


def test_range_selects_videos_by_index(tmp_path: Path) -> None:
    path = _write(tmp_path, "h.json", HDVG)
    assert [v.video_id for v in read_metafile(path, select="1:").videos] == ["-x_y"]
    assert [v.video_id for v in read_metafile(path, select=":1").videos] == ["44ot5_2UaaU"]
    assert read_metafile(path, select="5:9").videos == []
    assert parse_range("") is None and parse_range("2:7") == slice(2, 7)
    for bad in ("a:b", "3", "7:2", "-1:4"):
        with pytest.raises(MetafileError, match="--range"):
            parse_range(bad)


def test_panda70m(tmp_path: Path) -> None:
    meta = read_metafile(_write(tmp_path, "p.csv", PANDA))
    assert meta.format == "panda70m"
    (video,) = meta.videos
    assert video.video_id == "--1ApFKwvjE"
    assert [s.span_id for s in video.spans] == ["--1ApFKwvjE_0", "--1ApFKwvjE_1", "--1ApFKwvjE_2"]
    assert [s.caption for s in video.spans] == ["A race track.", "A man's car.", "The end."]
    assert video.spans[2].match_score == pytest.approx(0.31)
    assert video.spans[1].caption_dataset == "panda70m"
    # Touching spans share one section; the far one gets its own.
    assert [(s.start_s, s.end_s) for s in video.sections] == [(0.0, 7.0), (60.0, 62.5)]
    assert [s.section for s in video.spans] == [0, 0, 1]


def test_panda70m_literals_are_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = PANDA.replace(
        '"[0.45, 0.5, 0.31]"', f"\"__import__('pathlib').Path('{marker}').touch()\""
    )
    with pytest.raises(MetafileError, match=r"row 1, field 'matching_score': not a list literal"):
        read_metafile(_write(tmp_path, "p.csv", evil))
    assert not marker.exists()


def test_webvid(tmp_path: Path) -> None:
    meta = read_metafile(_write(tmp_path, "w.csv", WEBVID))
    assert meta.format == "webvid"
    ids = [v.video_id for v in meta.videos]
    assert ids == ["1053841541", "5641526"]
    horse = meta.videos[1]
    assert horse.duration_s == pytest.approx(64.5)
    assert horse.spans[0].caption == "Horse grazing, green screen"
    assert (horse.spans[0].start_s, horse.spans[0].end_s) == (0.0, 64.5)
    assert horse.url.endswith("stock-footage-horse.mp4") and not horse.sections


def test_msrvtt(tmp_path: Path) -> None:
    meta = read_metafile(_write(tmp_path, "m.json", MSRVTT))
    assert meta.format == "msrvtt"
    first, second = meta.videos
    assert (first.video_id, first.path, first.url) == ("video7010", "video7010.mp4", None)
    assert len(first.spans[0].captions) == 20 and first.spans[0].caption == "caption 0"
    assert second.video_id == "eyhzdC936uk_15_27"


def test_opensora_and_openvid(tmp_path: Path) -> None:
    meta = read_metafile(_write(tmp_path, "o.csv", OPENSORA))
    assert meta.format == "opensora"
    a, b = meta.videos
    assert a.path == "clips/a.mp4" and a.duration_s == pytest.approx(2.0)
    assert a.spans[0].end_frame == 50 and a.spans[0].caption == "a red square"
    assert b.spans[0].caption is None and b.duration_s is None
    assert a.video_id.startswith("a-") and a.video_id != b.video_id
    openvid = "video,caption,aesthetic score,frame,fps,seconds\nx.mp4,a cat,5.1,48,24,2.0\n"
    (cat,) = read_metafile(_write(tmp_path, "v.csv", openvid)).videos
    assert cat.spans[0].caption == "a cat" and cat.duration_s == 2.0


VTT = (
    "WEBVTT\n\n0\n0:00:00.000 --> 0:00:04.480\n[Scene 1] A race track.\n\n"
    "1\n0:00:08.480 --> 0:00:11.200\n[Scene 2] An empty\ntrack.\n"
)


def test_vtt(tmp_path: Path) -> None:
    meta = read_metafile(_write(tmp_path, "---h-Df_mHE.vtt", VTT))
    (video,) = meta.videos
    assert meta.format == "vtt" and video.url == "https://www.youtube.com/watch?v=---h-Df_mHE"
    assert [s.caption for s in video.spans] == ["A race track.", "An empty track."]
    assert [(s.start_s, s.end_s) for s in video.sections] == [(0.0, 4.48), (8.48, 11.2)]
    with pytest.raises(MetafileError, match="cue at line 4, field 'timing'"):
        read_metafile(_write(tmp_path, "x.vtt", VTT.replace("0:00:04.480", "0:00:0x")))


def test_url_list(tmp_path: Path) -> None:
    meta = read_metafile(_write(tmp_path, "list.txt", URLS))
    assert meta.format == "urls"
    yt, web, local = meta.videos
    assert yt.video_id == "jLX0D8qQUBM"
    assert web.video_id.startswith("My_20Clip-") and web.url
    assert local.path == "local/file.mkv" and local.url is None
    assert read_metafile(_write(tmp_path, "list.txt", URLS)).videos[1].video_id == web.video_id


def test_duplicate_rows_merge_and_conflicts(tmp_path: Path) -> None:
    lines = PANDA.splitlines()
    row2 = lines[1].replace("0:01:00.000', '0:01:02.500", "0:02:00.000', '0:02:01.000")
    same = read_metafile(_write(tmp_path, "p.csv", "\n".join([*lines, lines[1]]) + "\n"))
    assert len(same.videos) == 1 and len(same.videos[0].spans) == 3
    with pytest.raises(MetafileError, match="appears twice"):
        read_metafile(_write(tmp_path, "p.csv", "\n".join([*lines, row2]) + "\n"))
    web = WEBVID.splitlines()
    clash = web[2].replace("stock-footage-horse", "other")
    with pytest.raises(MetafileError, match="share video id '5641526'"):
        read_metafile(_write(tmp_path, "w.csv", "\n".join([*web, clash]) + "\n"))


def test_helpers() -> None:
    assert parse_time("00:03:03.520") == pytest.approx(183.52)
    assert parse_time("1:02.5") == pytest.approx(62.5) and parse_time(4) == 4.0
    for bad in ("00:61:00", "x", "-3", "nan", True):
        with pytest.raises(ValueError):
            parse_time(bad)
    assert youtube_id("https://www.youtube.com/shorts/abcdefghijk") == "abcdefghijk"
    assert youtube_id("https://m.youtube.com/watch?v=abcdefghijk&list=x") == "abcdefghijk"
    assert youtube_id("https://vimeo.com/123") is None
    assert make_meta_video_id("a b/c", None).startswith("a_b_c-")
    assert make_meta_video_id(None, "https://x.org/v.mp4") == make_meta_video_id(
        None, "https://x.org/v.mp4"
    )


# ---------------------------------------------------------------------------- errors


def _hdvg_with(**clip_fields: object) -> dict:
    clip = {"span": ["00:00:01.000", "00:00:02.000"], "fps": 25, "scene_split": []}
    clip.update(clip_fields)
    return {"vid": {"url": "https://x.org/v", "clip": {"vid.0.mp4": clip}}}


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("h.json", _hdvg_with(span=["00:00:02", "00:00:01"]), "clip 'vid.0.mp4', field 'span'"),
        ("h.json", _hdvg_with(span="00:00:01"), "field 'span': expected [start, end]"),
        ("h.json", _hdvg_with(fps="fast"), "field 'fps'"),
        ("h.json", _hdvg_with(scene_split=[{"scene_cut": [5, 2]}]), "scene 0, field 'scene_cut'"),
        ("h.json", _hdvg_with(fps=None, scene_split=[{"scene_cut": [1, 5]}]), "field 'fps'"),
        ("h.json", _hdvg_with(scene_split=[{"scene_cut": [0, 5], "caption": 3}]), "'caption'"),
        ("h.json", {"vid": {"clip": {}}}, "video 'vid', field 'url'"),
        ("h.json", {"vid": [1]}, "video 'vid': expected an object"),
        ("h.json", '{"vid": ', "invalid JSON at line 1"),
        ("m.json", [{"video": "a.mp4", "caption": [1]}], "entry 0, field 'caption'"),
        ("m.json", [{"caption": ["x"]}], "entry 0, field 'video'"),
        ("p.csv", PANDA.replace("0:00:04.480']", "0:00:0x']", 1), "clip 0, field 'timestamp'"),
        ("p.csv", PANDA.replace("'The end.'", "'The end.', 'x'"), "3 timestamps but 4 captions"),
        ("p.csv", "videoID,url,caption\n", "missing column 'timestamp'"),
        ("w.csv", WEBVID.replace("PT00H00M17S", "17 seconds"), "row 1, field 'duration'"),
        ("w.csv", WEBVID.replace("https://ak.picdn.net/shutterstock", "hx"), "row 1, field 'con"),
        ("o.csv", OPENSORA.replace(",25,", ",fast,"), "row 1, field 'fps'"),
        ("x.csv", "alpha,beta\n1,2\n", "unknown csv columns"),
        ("u.txt", "http://a.org/x.mp4 http://b.org/y.mp4\n", "line 1: one URL per line"),
    ],
)  # fmt: skip
def test_malformed_metafiles_name_file_record_and_field(
    tmp_path: Path, name: str, content: object, fragment: str
) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(MetafileError) as info:
        read_metafile(path)
    message = str(info.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(MetafileError, match="metafile not found"):
        read_metafile(tmp_path / "nope.json")
    path = _write(tmp_path, "h.json", HDVG)
    with pytest.raises(MetafileError, match="unknown metafile format 'xml'"):
        read_metafile(path, format="xml")
    assert sniff_format(_write(tmp_path, "data", "[]")) == "msrvtt"


_scalar = st.none() | st.booleans() | st.integers(-5, 500) | st.floats() | st.text(max_size=12)
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


def _clip_like() -> st.SearchStrategy[dict]:
    scene = st.fixed_dictionaries(
        {"scene_cut": st.lists(st.integers(-2, 60) | _json, max_size=3)},
        optional={"clip_id": _json, "caption": _json},
    )
    times = st.sampled_from(["00:00:01.000", "0:00:02", "3", "x", ""]) | _json
    clip = st.fixed_dictionaries(
        {"span": st.lists(times, max_size=3)},
        optional={
            "fps": _json | st.floats(0, 60),
            "scene_split": st.lists(scene, max_size=3) | _json,
        },
    )
    clips = st.dictionaries(st.text(max_size=6), clip | _json, max_size=3) | _json
    return st.dictionaries(
        st.text(min_size=1, max_size=6),
        st.fixed_dictionaries({"url": _json, "clip": clips}),
        max_size=3,
    )


_FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(data=_clip_like() | _json)
def test_fuzz_json_metafiles_fail_in_one_line(tmp_path: Path, data: object) -> None:
    for fmt in ("hdvg", "msrvtt"):
        path = _write(tmp_path, f"f-{fmt}.json", json.dumps(data, allow_nan=True))
        try:
            read_metafile(path, format=fmt)
        except MetafileError as exc:
            assert "\n" not in str(exc)


_cell = st.text(alphabet=st.sampled_from(list("0:.,[]'\"() abx-_1\n\tPTHMS")), max_size=20)


@_FUZZ
@given(cells=st.lists(st.lists(_cell, min_size=1, max_size=6), max_size=4))
def test_fuzz_csv_metafiles_fail_in_one_line(tmp_path: Path, cells: list[list[str]]) -> None:
    headers = {
        "panda70m": "videoID,url,timestamp,caption,matching_score",
        "webvid": "videoid,name,page_idx,page_dir,duration,contentUrl",
        "opensora": "path,text,num_frames,height,width,aspect_ratio,fps,resolution",
    }
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(cells)
    for fmt, header in headers.items():
        path = _write(tmp_path, f"f-{fmt}.csv", header + "\n" + buffer.getvalue())
        for forced in (fmt, None):
            try:
                read_metafile(path, format=forced)
            except MetafileError as exc:
                assert "\n" not in str(exc)


@_FUZZ
@given(blob=st.binary(max_size=200))
def test_fuzz_any_bytes(tmp_path: Path, blob: bytes) -> None:
    for name in ("blob.json", "blob.csv", "blob.vtt", "blob.txt"):
        path = tmp_path / name
        path.write_bytes(blob)
        try:
            read_metafile(path)
        except MetafileError as exc:
            assert "\n" not in str(exc)


# ---------------------------------------------------------------------------- span planning


def _video_row(**extra: object) -> dict:
    row = {"video_id": "v.3", "path": "/x/v.3.mp4", "status": "ok", "fps": 25.0}
    row.update({"num_frames": 100, "width": 96, "height": 64, "section_start_s": 10.0})
    row.update(extra)
    return row


def test_plan_clips_from_spans_offsets_and_clamps() -> None:
    spans = [
        {"span_id": "a", "start_s": 10.0, "end_s": 11.2, "caption": "x", "caption_dataset": "hdvg"},
        {"span_id": "b", "start_s": 13.0, "end_s": 99.0},
        {"span_id": "c", "start_s": 30.0, "end_s": 31.0},
        {"span_id": "d/e f", "start_s": 12.0, "end_s": None},
    ]
    rows = {r["span_id"]: r for r in plan_clips_from_spans(_video_row(), spans)}
    assert (rows["a"]["start_frame"], rows["a"]["end_frame"]) == (0, 30)
    assert rows["a"]["start_s"] == 0.0 and rows["a"]["source_start_s"] == 10.0
    assert (rows["a"]["caption_src"], rows["a"]["caption_dataset"], rows["a"]["keep"]) == (
        "x",
        "hdvg",
        True,
    )
    assert (rows["b"]["start_frame"], rows["b"]["end_frame"]) == (75, 100)
    assert (rows["c"]["keep"], rows["c"]["drop_reason"]) == (False, "span_outside_video")
    assert (rows["d/e f"]["start_frame"], rows["d/e f"]["end_frame"]) == (50, 100)
    assert rows["d/e f"]["clip_id"].startswith("d_e_f-") and rows["a"]["clip_id"] == "a"
    assert rows["a"]["aspect_ratio"] == pytest.approx(64 / 96)


def test_failed_video_keeps_a_row_per_span() -> None:
    row = _video_row(status="error", error="download: private: Private video", fps=None)
    row["spans"] = [
        {"span_id": "a", "start_s": 0.0, "end_s": 1.0},
        {"span_id": "b", "start_s": 1.0, "end_s": 2.0},
    ]
    out = SpanPlanStage().process(rows_to_table([row], VIDEO_SCHEMA)).to_pylist()
    assert [r["span_id"] for r in out] == ["a", "b"]
    assert all(r["status"] == "error" and r["error"].startswith("download: private") for r in out)
    assert all(r["keep"] is False for r in out)


def _mp4(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    source = "color=c=red:size=64x48:rate=25"
    codec = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    run_ffmpeg(["-f", "lavfi", "-i", source, "-t", str(seconds), *codec, str(path)])
    return path


def test_ingest_meta_local_files(tmp_path: Path) -> None:
    _mp4(tmp_path / "clips" / "a.mp4", 2.0)
    meta = read_metafile(_write(tmp_path, "o.csv", OPENSORA))
    result = ingest_metafile(meta, tmp_path / "run")
    videos = result.videos.to_pylist()
    assert [v["status"] for v in videos] == ["ok", "error"]
    assert "file not found" in videos[1]["error"]
    clips = result.clips.to_pylist()
    assert clips[0]["start_frame"] == 0 and clips[0]["end_frame"] == 50
    assert clips[0]["caption_src"] == "a red square"
    assert clips[0]["caption_dataset"] == "opensora"
    assert clips[1]["status"] == "error"
    assert isinstance(result.videos.schema.field("spans").type, pa.ListType)

    folder = tmp_path / "msr"
    _mp4(folder / "video7010.mp4", 1.0)
    app = typer.Typer(pretty_exceptions_enable=False)
    register_ingest_meta(app)
    msr = _write(tmp_path, "m.json", MSRVTT)
    args = ["ingest-meta", str(msr), "--out", str(tmp_path / "run2"), "--videos", str(folder)]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert "2 files (1 with errors), 2 spans → 2 clip rows, 1 ready to cut" in " ".join(
        cli.output.split()
    )
    bad = CliRunner().invoke(
        app, ["ingest-meta", str(msr), "--out", str(tmp_path / "r3"), "--range", "x"]
    )
    assert bad.exit_code == 2 and "--range" in bad.output and "Traceback" not in bad.output
