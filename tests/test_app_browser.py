"""The app in a real browser: `streamlit run` on 127.0.0.1, driven by Playwright with the system's Chromium.

Needs Debian's `chromium` at /usr/bin/chromium (`.ci/run` installs it; never `playwright install`). Types a
primer, clicks Generate, waits for the audio players, piano rolls and engraved scores (SVG), downloads a MIDI file, a
MusicXML and an ABC file and parses them, then types a chord progression, generates over it, harmonizes that take
and downloads its MIDI file with a chord track, and saves a screenshot in the test's temporary folder. The time from
click to playable audio is printed, not asserted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mido
import music21
import pytest
from playwright.sync_api import sync_playwright

from melodyrnn.bundle import save_bundle
from melodyrnn.midi_io import read_midi
from melodyrnn.model import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds  # a ceiling so a dead server fails the test instead of hanging it
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer /_stcore/health:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path):
    bundle = tmp_path / "tiny.melodyrnn"
    save_bundle(bundle, build_model(ModelConfig(units=16, num_layers=1, attention_window=64)))
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {
        **os.environ,
        "MELODYRNN_MODEL": str(bundle),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        "MELODYRNN_APP_SCRATCH": str(tmp_path / "scratch"),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "app" / "streamlit_app.py"),
                "--server.headless",
                "true",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--server.fileWatcherType",
                "none",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _count_when_at_least(page, selector: str, n: int, timeout_ms: int = 60_000) -> int:
    """How many elements match `selector` once at least `n` do (a timeout fails the test)."""
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length >= n", arg=[selector, n], timeout=timeout_ms
    )
    return page.locator(selector).count()


def harmonize_a_take_over_a_progression(page, generate, tmp_path: Path) -> None:
    """One melody over "Am F | C G": its piano roll labels the chords; Harmonize gives the take's MIDI a chord track."""
    page.get_by_role("spinbutton", name="Melodies").fill("1")
    chords = page.get_by_role("textbox", name="Chords")
    chords.fill("Am F | C G")
    chords.press("Tab")
    generate.click()
    page.get_by_text("Chords asked for: Am F | C G").wait_for(timeout=120_000)
    roll = page.locator("[data-testid='stPlotlyChart']").first  # the newest take comes first
    for symbol in ("Am", "F", "C", "G"):  # the chord row's labels, drawn in the figure
        roll.locator("text.bartext", has_text=symbol).first.wait_for(timeout=30_000)
    page.locator(".st-key-harmonize_2").get_by_role("button", name="Harmonize").click()
    page.get_by_text("Harmonized (half bar chords").wait_for(timeout=120_000)
    with page.expect_download(timeout=60_000) as download_info:
        page.locator("[data-testid='stDownloadButton'] button", has_text="MIDI").first.click()
    saved = tmp_path / f"harmonized_{download_info.value.suggested_filename}"
    download_info.value.save_as(saved)
    tracks = {track.name: track for track in mido.MidiFile(saved).tracks}
    assert saved.name.endswith("take02_melody01.mid") and {"chords", "bass"} <= set(tracks)
    assert sum(1 for m in tracks["chords"] if m.type == "note_on" and m.velocity > 0) > 0


@pytest.mark.slow
def test_generate_hear_see_and_download_in_chromium(server, tmp_path):
    assert Path(CHROMIUM).is_file(), "install Debian's chromium (apt-get install chromium); .ci/run does"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            page.goto(server)
            generate = page.get_by_role("button", name="Generate")
            generate.wait_for(timeout=120_000)
            page.get_by_text("Default model").first.wait_for()

            primer = page.get_by_role("textbox", name="Primer notes")
            primer.fill("D4 F4 A4 D5")
            primer.press("Tab")

            clicked = time.perf_counter()
            generate.click()
            first_audio = page.locator("audio").first
            first_audio.wait_for(state="attached", timeout=120_000)
            page.wait_for_function(  # playable: the browser has the WAV's metadata (HAVE_METADATA or more)
                "() => { const a = document.querySelector('audio'); return a && a.readyState >= 1 && a.duration > 0 }",
                timeout=120_000,
            )
            click_to_audio = time.perf_counter() - clicked
            print(f"\nclick to playable audio (4 melodies x 16 bars, default model): {click_to_audio:.2f} s")

            # the page streams the four melodies in one after another: wait for all, then check there are exactly 4
            assert _count_when_at_least(page, "audio", 4) == 4
            duration = page.evaluate("() => document.querySelector('audio').duration")
            assert duration > 16 * 2 * 0.9  # 16 bars of 4/4 at 120 qpm is 32 s
            # the players stream Ogg Vorbis (about ten times smaller than the WAV download)
            source = page.evaluate("() => document.querySelector('audio').currentSrc")
            kind = page.evaluate("async (url) => (await fetch(url)).headers.get('content-type')", source)
            assert kind == "audio/ogg", (source, kind)
            assert page.get_by_role("button", name="Deploy").count() == 0  # the app's own config hides it
            assert _count_when_at_least(page, "[data-testid='stPlotlyChart'] .js-plotly-plot", 4) == 4
            assert page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot .bars path").count() > 0  # notes
            assert page.locator("[data-testid='stPlotlyChart']", has_text="primer").count() == 4  # band + legend

            with page.expect_download(timeout=60_000) as download_info:
                page.locator("[data-testid='stDownloadButton'] button", has_text="MIDI").first.click()
            download = download_info.value
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            assert saved.suffix == ".mid"
            midi = mido.MidiFile(saved)
            assert sum(1 for m in midi if m.type == "note_on" and m.velocity > 0) > 0

            # each melody's engraved score is an SVG in the page; its MusicXML and ABC download and parse
            assert _count_when_at_least(page, ".melody-score:has(svg)", 4) == 4
            assert page.locator(".melody-score svg").first.bounding_box()["height"] > 50
            page.locator(".melody-score").first.screenshot(path=str(tmp_path / "score.png"))
            for label, suffix in (("MusicXML", ".musicxml"), ("ABC", ".abc")):
                with page.expect_download(timeout=60_000) as download_info:
                    page.locator("[data-testid='stDownloadButton'] button", has_text=label).first.click()
                saved = tmp_path / download_info.value.suggested_filename
                download_info.value.save_as(saved)
                assert saved.suffix == suffix
                if (
                    suffix == ".abc"
                ):  # abc2midi reads every octave (music21 fails below C0, where an untrained model goes)
                    midi_path = tmp_path / "abc.mid"
                    subprocess.run(["abc2midi", str(saved), "-o", str(midi_path)], check=True, capture_output=True)
                    track = max(read_midi(midi_path).tracks, key=lambda t: t.num_notes)
                    opening = [n.pitch for n in track.notes[:4]]
                else:
                    opening = [p.midi for p in music21.converter.parse(str(saved)).flatten().pitches[:4]]
                assert opening == [62, 65, 69, 74]  # the primer, D4 F4 A4 D5

            harmonize_a_take_over_a_progression(page, generate, tmp_path)

            page.get_by_role("tab", name="Train").click()  # the uploader states the limit the app enforces
            uploader = page.locator("[data-testid='stFileUploader']", has_text="or a zip of them")
            uploader.wait_for(timeout=30_000)
            assert "32MB per file" in uploader.inner_text() and "200MB" not in uploader.inner_text()
            page.get_by_role("tab", name="Generate").click()

            page.get_by_text("Take 1").first.scroll_into_view_if_needed()
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
        finally:
            browser.close()
