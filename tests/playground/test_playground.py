"""The playground as a person uses it, in a real headless Chromium against the real server (preview engine,
keys required): key, inputs made on the spot, price, progress, the finished video played to its end, history,
cancel, and the curl snippet copied from the page and run. Then /docs and /redoc with no network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import httpx
import pytest
from api_servers import Server, make_key, wait_until
from browser import SCREENSHOTS, page_errors
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

pytestmark = pytest.mark.slow


def text(driver, selector: str) -> str:  # noqa: ANN001 - a selenium WebDriver
    return driver.find_element(By.CSS_SELECTOR, selector).text


def history_status(driver, task_id: str) -> str | None:  # noqa: ANN001
    # in one script: the page redraws the rows whenever it reloads the history, which would stale a held row
    return driver.execute_script("const row = document.querySelector(`#history tr[data-task-id='${arguments[0]}']`);"
                                 "return row ? row.cells[3].textContent : null", task_id)


def test_make_watch_play_cancel_and_run_the_snippet(playground_server: tuple[Server, dict], browser,  # noqa: ANN001
                                                    grace_hopper_path: Path, speech_wav: Path,
                                                    long_speech_wav: Path, tmp_path: Path) -> None:
    server, key = playground_server
    driver = browser
    driver.get(f"{server.url}/")

    # The key, typed once: the server refuses the page until it has one, then keeps it across a reload.
    wait_until(lambda: "needs an API key" in text(driver, "#key-status"), timeout=20, what="the key prompt")
    driver.find_element(By.ID, "api-key").send_keys(key["key"])
    driver.find_element(By.ID, "save-key").click()
    wait_until(lambda: text(driver, "#key-status") == "key accepted", timeout=20, what="the key accepted")
    driver.refresh()
    wait_until(lambda: text(driver, "#key-status") == "key accepted", timeout=20, what="the key kept")

    # A portrait and speech as files: uploaded, then priced by /v1/estimate before anything is submitted.
    driver.find_element(By.ID, "source-file").send_keys(str(grace_hopper_path))
    driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(speech_wav))
    wait_until(lambda: text(driver, "#price").startswith("$"), timeout=30, what="the price")
    price = float(driver.find_element(By.ID, "price").get_attribute("data-price"))
    assert text(driver, "#price").startswith(f"${price:.2f} for ")
    assert price == pytest.approx(6 * 0.03) or price == pytest.approx(7 * 0.03)  # ~6.3 s of speech at 480p

    # The face chosen by a click on the picture: a box around it, sent as bbox.
    canvas = driver.find_element(By.ID, "picture")
    ActionChains(driver).move_to_element_with_offset(canvas, 0, -canvas.size["height"] // 6).click().perform()
    wait_until(lambda: '"bbox"' in text(driver, "#code-curl"), timeout=10, what="the box in the request")
    driver.find_element(By.ID, "seed").clear()
    driver.find_element(By.ID, "seed").send_keys("7")
    driver.find_element(By.ID, "fps").clear()
    driver.find_element(By.ID, "fps").send_keys("16")
    driver.find_element(By.ID, "prompt").click()  # the change events of seed and fps
    wait_until(lambda: '"seed":7' in text(driver, "#code-curl") and '"fps":16' in text(driver, "#code-curl"),
               timeout=10, what="seed and fps in the request")

    # Submit; the bar moves with the task's events and the video plays to its end.
    driver.find_element(By.ID, "submit").click()
    task_id = wait_until(lambda: text(driver, "#task-id"), timeout=30, what="the task id")
    seen: list[float] = []

    def finished() -> bool:
        # the status first: the page may move on between two reads, and the bar read after the end must be full
        status = driver.find_element(By.ID, "task").get_attribute("data-status")
        seen.append(float(driver.find_element(By.ID, "progress").get_attribute("value")))
        return status in ("succeeded", "failed")

    wait_until(finished, timeout=120, every=0.02, what="the task to finish")
    assert driver.find_element(By.ID, "task").get_attribute("data-status") == "succeeded", text(driver, "#task-error")
    moving = [v for v in seen if 0 < v < 1]
    assert moving, f"the progress bar never showed a value between 0 and 1: {sorted(set(seen))}"
    assert seen == sorted(seen) and seen[-1] == 1
    driver.execute_script("const v = document.getElementById('result'); v.muted = true; v.play();")
    wait_until(lambda: driver.execute_script("return document.getElementById('result').ended"), timeout=60,
               what="the video to play to its end")
    duration = driver.execute_script("return document.getElementById('result').duration")
    assert duration == pytest.approx(6.3, abs=0.6)
    # the finished MP4, not the live preview it may have shown while rendering
    assert driver.execute_script("const v = document.getElementById('result');"
                                 "return [v.currentSrc.split('?')[0].split('/').pop(), v.dataset.live || '']") == ["video.mp4", ""]
    assert driver.find_element(By.ID, "download").get_attribute("href").startswith(f"{server.url}/v1/files/{task_id}/")
    driver.execute_script("document.getElementById('result').currentTime = 1.5")
    wait_until(lambda: history_status(driver, task_id) == "succeeded", timeout=20, what="the task in the history")
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(SCREENSHOTS / "playground.png"))

    # The curl snippet, copied with the page's button and run by a shell: the same task again, done.
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": server.url, "permissions": [
        "clipboardReadWrite", "clipboardSanitizedWrite"]})
    driver.find_element(By.ID, "copy-curl").click()
    wait_until(lambda: text(driver, "#copy-curl") == "Copied", timeout=10, what="the copy")
    copied = driver.execute_async_script("navigator.clipboard.readText().then(arguments[arguments.length - 1])")
    assert copied == text(driver, "#code-curl") and "$INFINITETALK_API_KEY" in copied and key["key"] not in copied
    ran = subprocess.run(["bash", "-c", copied], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "INFINITETALK_API_KEY": key["key"]})
    assert ran.returncode == 0, ran.stderr
    again = json.loads(ran.stdout)
    assert again["status"] == "succeeded" and again["seed"] == 7 and again["outputs"], again

    # A second task with long speech, canceled from the page: refunded, and shown so in the history.
    # a minute of speech: still rendering when it is canceled, however slow this machine is while the test
    # watches its live preview first (the cancel stops it: the minute is never rendered)
    minute = tmp_path / "minute.wav"
    with wave.open(str(long_speech_wav)) as half, wave.open(str(minute), "wb") as out:
        out.setparams(half.getparams())
        frames = half.readframes(half.getnframes())
        out.writeframes(frames + frames)
    driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(minute))
    wait_until(lambda: text(driver, "#price").startswith("$") and float(
        driver.find_element(By.ID, "price").get_attribute("data-price")) > price, timeout=30,
        what="the long speech's price")
    driver.find_element(By.ID, "submit").click()
    wait_until(lambda: text(driver, "#task-id") not in ("", task_id), timeout=30, what="the second task")
    second = text(driver, "#task-id")
    wait_until(lambda: driver.find_element(By.ID, "cancel").is_displayed(), timeout=10, what="the cancel button")

    # The live preview plays in the page's player while the task renders (hls.js over the task's playlist):
    # its time moves on and what it has buffered grows, chunk by chunk, before the task has ended.
    def player() -> dict:
        return driver.execute_script("""const v = document.getElementById('result'); const b = v.buffered;
            return {live: v.dataset.live || '', time: v.currentTime, end: b.length ? b.end(b.length - 1) : 0,
                    status: document.getElementById('task').dataset.status}""")
    wait_until(lambda: player()["live"] == second and player()["time"] > 0.3, timeout=60,
               what=f"the live preview playing (player: {player()})")
    before = player()
    wait_until(lambda: player()["end"] > before["end"] + 0.3 and player()["time"] > before["time"], timeout=60,
               what=f"the live preview growing (before: {before}, now: {player()})")
    assert player()["status"] == "running" and text(driver, "#live-note").startswith("Live preview")
    # its files cannot be deleted while it renders
    refused = httpx.delete(f"{server.url}/v1/tasks/{second}", headers={"X-API-Key": key["key"]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "task_not_finished", refused.text

    # what a cancel costs, said before the click: refunded before the task starts, charged in part after
    wait_until(lambda: "charged" in text(driver, "#cancel-hint") or "refunded in full" in text(driver, "#cancel-hint"),
               timeout=10, what="the cancel's cost hint")
    driver.find_element(By.ID, "cancel").click()
    wait_until(lambda: driver.find_element(By.ID, "task").get_attribute("data-status") == "canceled", timeout=60,
               what="the task canceled")
    # what was made before the cancel is its video (charged), or nothing when canceled before a chunk
    ended = httpx.get(f"{server.url}/v1/tasks/{second}", headers={"X-API-Key": key["key"]}).json()
    partial = [output for output in ended["outputs"] if output["content_type"] == "video/mp4"]
    assert driver.find_element(By.ID, "result").is_displayed() == bool(partial)
    assert driver.execute_script("return document.getElementById('result').dataset.live") is None
    # a canceled task is doing nothing: no "chunk 1/11" left over, and no hint about a cancel
    assert text(driver, "#stage") == "" and not driver.find_element(By.ID, "cancel-hint").is_displayed()
    wait_until(lambda: history_status(driver, second) == "canceled", timeout=20, what="the canceled task listed")
    # refunded when canceled before it started, else charged (the README's rule): the row says which
    cost = httpx.get(f"{server.url}/v1/tasks/{second}", headers={"X-API-Key": key["key"]}).json()["cost"]
    row = driver.find_element(By.CSS_SELECTOR, f'#history tr[data-task-id="{second}"]')
    assert row.find_elements(By.TAG_NAME, "td")[4].text == ("refunded" if cost["refunded"] else f"${cost['price']:.2f}")

    # Opening the first task from the history shows its video again.
    driver.find_element(By.CSS_SELECTOR, f'#history tr[data-task-id="{task_id}"]').click()
    wait_until(lambda: text(driver, "#task-id") == task_id and driver.find_element(By.ID, "result").is_displayed(),
               timeout=10, what="the first task reopened")
    assert page_errors(driver) == []


def test_speech_recorded_in_the_browser_is_priced(playground_server: tuple[Server, dict], browser,  # noqa: ANN001
                                                  grace_hopper_path: Path) -> None:
    """Chromium's stand-in microphone (a tone): recorded, uploaded in the browser's own format, decoded and priced."""
    server, key = playground_server
    driver = browser
    driver.get(f"{server.url}/")
    driver.execute_script("localStorage.setItem('infinitetalk.apiKey', arguments[0])", key["key"])
    driver.refresh()
    wait_until(lambda: text(driver, "#key-status") == "key accepted", timeout=20, what="the key accepted")
    driver.find_element(By.ID, "source-file").send_keys(str(grace_hopper_path))
    record = driver.find_element(By.CSS_SELECTOR, "#speaker-0 .record")
    record.click()
    wait_until(lambda: record.text == "Stop", timeout=10, what="the recording to start")
    driver.execute_async_script("setTimeout(arguments[arguments.length - 1], 1500)")  # speak for 1.5 s
    record.click()
    wait_until(lambda: text(driver, "#price").startswith("$"), timeout=30,
               what=f"the recording's price (form error: {text(driver, '#form-error')!r})")
    assert driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-preview").get_attribute("src").startswith("blob:")
    assert float(driver.find_element(By.ID, "price").get_attribute("data-price")) == pytest.approx(5 * 0.03)
    assert 1.0 <= float(text(driver, "#price").split(" for ")[1].split(" s")[0]) <= 3.0
    assert page_errors(driver) == []


def test_two_speakers_in_turn_with_a_box_each(playground_server: tuple[Server, dict], browser,  # noqa: ANN001
                                              grace_hopper_path: Path, speech_wav: Path,
                                              short_speech_wav: Path) -> None:
    server, key = playground_server
    driver = browser
    driver.get(f"{server.url}/")
    driver.execute_script("localStorage.setItem('infinitetalk.apiKey', arguments[0])", key["key"])
    driver.refresh()
    wait_until(lambda: text(driver, "#key-status") == "key accepted", timeout=20, what="the key accepted")
    driver.find_element(By.ID, "source-file").send_keys(str(grace_hopper_path))
    driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(speech_wav))
    driver.find_element(By.ID, "two-speakers").click()
    driver.find_element(By.CSS_SELECTOR, "#speaker-1 .audio-file").send_keys(str(short_speech_wav))
    driver.find_element(By.CSS_SELECTOR, "#layout option[value='add']").click()
    canvas = driver.find_element(By.ID, "picture")
    wait_until(lambda: canvas.size["width"] > 100, timeout=10, what="the picture")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)  # the clicks above scrolled
    ActionChains(driver).move_to_element_with_offset(canvas, -60, -80).click().perform()  # speaker 1: a click
    driver.find_element(By.CSS_SELECTOR, "#face-speaker option[value='1']").click()
    ActionChains(driver).move_to_element_with_offset(canvas, 20, -40).click_and_hold() \
        .move_by_offset(90, 120).release().perform()  # speaker 2: a drag
    wait_until(lambda: text(driver, "#code-curl").count('"x0"') == 2, timeout=10, what="two boxes in the request")
    body = json.loads(text(driver, "#code-curl").split("-d '")[1].rstrip("'"))
    assert len(body["audio"]) == 2 and body["audio_layout"] == "add" and len(body["bbox"]) == 2
    first, second = body["bbox"]
    assert first["x0"] < second["x0"]  # the click's box, then the dragged one (90 x 120 screen pixels)
    assert second["x1"] - second["x0"] > 80 and second["y1"] - second["y0"] > 110

    # in turn: the price is for both tracks one after the other, as the API prices it
    quote = httpx.post(f"{server.url}/v1/estimate", headers={"X-API-Key": key["key"]},
                       json={"audio": body["audio"], "audio_layout": "add"}).json()
    wait_until(lambda: driver.find_element(By.ID, "price").get_attribute("data-price") == str(quote["price"]),
               timeout=30, what=f"the price {quote['price']} (shown: {text(driver, '#price')!r})")
    assert f"for {quote['audio_seconds']:.1f} s" in text(driver, "#price")

    # WaveSpeed's multi route takes two speakers; RunPod's API cannot, and its snippet says so
    driver.find_element(By.CSS_SELECTOR, "#code-target option[value='wavespeed']").click()
    assert "/api/v3/wavespeed-ai/infinitetalk/multi" in text(driver, "#code-curl")
    assert '"order":"left_right"' in text(driver, "#code-curl")
    driver.find_element(By.CSS_SELECTOR, "#code-target option[value='runpod']").click()
    assert "cannot send: a second speaker" in text(driver, "#code-note")
    assert page_errors(driver) == []


def test_docs_render_with_no_network(playground_server: tuple[Server, dict], browser) -> None:  # noqa: ANN001
    server, key = playground_server
    driver = browser
    driver.get(f"{server.url}/docs")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/v1/tasks']"),
               timeout=30, what="Swagger UI's operations")
    paths = {e.get_attribute("data-path") for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/tasks", "/v1/estimate", "/v1/uploads", "/v1/models", "/v1/uploads/{upload_id}"} <= paths
    assert_all_local(driver, server.url)
    driver.save_screenshot(str(SCREENSHOTS / "playground-docs.png"))

    # Authorize with the key (either style is offered), then "Try it out" on a keyed route answers 200.
    driver.find_element(By.CSS_SELECTOR, ".auth-wrapper .btn.authorize").click()
    schemes = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".modal-ux .auth-container"), timeout=10,
                         what="the Authorize dialog")
    assert "bearer" in schemes[0].text and "X-API-Key" in schemes[1].text, [scheme.text for scheme in schemes]
    schemes[1].find_element(By.CSS_SELECTOR, "input").send_keys(key["key"])
    schemes[1].find_element(By.CSS_SELECTOR, "button.authorize").click()
    driver.find_element(By.CSS_SELECTOR, ".modal-ux button.btn-done").click()
    listing = driver.find_element(
        By.XPATH, "//div[contains(@class, 'opblock-get')][.//*[@data-path='/v1/tasks']]")
    listing.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait_until(lambda: listing.find_elements(By.CSS_SELECTOR, ".try-out__btn"), timeout=10, what="Try it out")
    listing.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    listing.find_element(By.CSS_SELECTOR, ".execute").click()
    status = wait_until(lambda: listing.find_elements(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"),
                        timeout=20, what="the answer to Try it out")
    assert status[0].text.strip() == "200", listing.find_element(By.CSS_SELECTOR, ".live-responses-table").text

    driver.get(f"{server.url}/redoc")
    wait_until(lambda: "Submit a portrait" in driver.find_element(By.TAG_NAME, "body").text, timeout=30,
               what="ReDoc's operations")
    # ReDoc's sidebar logo, which it would fetch from Redocly's CDN, is one of ours: nothing refused, no error
    assert assert_all_local(driver, server.url) == set()
    assert page_errors(driver) == []


def assert_all_local(driver, origin: str) -> set[str]:  # noqa: ANN001
    """Every resource the page loaded came from our server; returns the ones the browser refused to fetch."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])")
    loaded = [name for name, status in entries if status]
    assert loaded and all(name.startswith(origin) for name in loaded), entries
    return {name for name, status in entries if not status}


#: A prompt a naive JSON-to-Python rewrite spoils (true/false/null inside it), with quotes, a backslash, a
#: line break and characters outside ASCII: the Python snippet must send it byte for byte.
TRICKY_PROMPT = 'it\'s a true story, not null\nor "false" \\ café 😀'


def stored_request(server: Server, task_id: str) -> dict:
    from api_servers import settings_for

    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import Task

    db, sessions = open_database(settings_for(server.data_dir))
    try:
        with sessions() as session:
            return session.get(Task, task_id).request
    finally:
        db.dispose()


def open_with_key(driver, server: Server, key: dict) -> None:  # noqa: ANN001
    driver.get(f"{server.url}/")
    driver.execute_script("localStorage.setItem('infinitetalk.apiKey', arguments[0])", key["key"])
    driver.refresh()
    wait_until(lambda: text(driver, "#key-status") == "key accepted", timeout=20, what="the key accepted")


def test_rough_edges_of_the_form(playground_server: tuple[Server, dict], browser, tmp_path: Path,  # noqa: ANN001
                                 grace_hopper_path: Path, short_speech_wav: Path) -> None:
    """Issue 22's defects, one flow: files chosen before the key, an unreadable speech, a price that must come
    back after a picture change, a picture the browser cannot draw, and the Python snippet run for real."""
    server, key = playground_server
    driver = browser
    driver.get(f"{server.url}/")
    driver.execute_script("localStorage.clear()")
    driver.refresh()
    wait_until(lambda: "needs an API key" in text(driver, "#key-status"), timeout=20, what="the key prompt")

    # Files chosen before the key: refused with a word on what to do, then sent once the key is saved.
    not_speech = tmp_path / "notes.wav"
    not_speech.write_text("these are notes, not speech")
    driver.find_element(By.ID, "source-file").send_keys(str(grace_hopper_path))
    driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(not_speech))
    wait_until(lambda: "API key" in text(driver, "#form-error"), timeout=20, what="the refused upload's error")
    driver.find_element(By.ID, "api-key").send_keys(key["key"])
    driver.find_element(By.ID, "save-key").click()
    # the unreadable speech: said once, its field once, and nothing to submit
    wait_until(lambda: text(driver, "#price").startswith("No price:"), timeout=30,
               what=f"the speech refused (price: {text(driver, '#price')!r})")
    page = driver.find_element(By.TAG_NAME, "main").text
    assert page.count("could not read the audio") == 1, page
    assert "audio: audio:" not in page and text(driver, "#price").startswith("No price: audio: could not read")
    assert not driver.find_element(By.ID, "submit").is_enabled()
    assert text(driver, "#engine").count("Engine:") == 1  # the key checked twice, said once

    # Real speech: priced; a face box on the portrait.
    driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(short_speech_wav))
    wait_until(lambda: text(driver, "#price").startswith("$"), timeout=30, what="the price")
    assert driver.find_element(By.ID, "submit").is_enabled()
    canvas = driver.find_element(By.ID, "picture")
    ActionChains(driver).move_to_element_with_offset(canvas, 0, -canvas.size["height"] // 6).click().perform()
    wait_until(lambda: '"bbox"' in text(driver, "#code-curl"), timeout=10, what="the box in the request")

    # Another picture, one Chromium cannot draw (TIFF), the speech kept: the price comes back (it stayed
    # "Uploading..."), the old picture and its box are gone, and the page says why there is no picture.
    from PIL import Image

    tiff = tmp_path / "portrait.tiff"
    with Image.open(grace_hopper_path) as portrait:
        portrait.save(tiff)
    driver.find_element(By.ID, "source-file").send_keys(str(tiff))
    wait_until(lambda: text(driver, "#price").startswith("$") and driver.find_element(By.ID, "submit").is_enabled(),
               timeout=20, what=f"the price back (shown: {text(driver, '#price')!r})")
    wait_until(lambda: driver.find_element(By.ID, "picture-note").is_displayed(), timeout=10, what="the note")
    assert "cannot show this file" in text(driver, "#picture-note")
    assert not driver.find_element(By.ID, "picture-box").is_displayed()
    assert '"bbox"' not in text(driver, "#code-curl")
    driver.find_element(By.ID, "source-file").send_keys(str(grace_hopper_path))  # the server takes no TIFF
    wait_until(lambda: driver.find_element(By.ID, "picture-box").is_displayed(), timeout=10, what="the picture")
    assert not driver.find_element(By.ID, "picture-note").is_displayed()

    # The Python snippet, run by the venv's python against the server: the prompt arrives byte for byte, and
    # the request is the one the page sends (the curl snippet's body is the page's own JSON).
    driver.execute_script("const p = document.getElementById('prompt'); p.value = arguments[0];"
                          "p.dispatchEvent(new Event('change'))", TRICKY_PROMPT)
    wait_until(lambda: "café" in text(driver, "#code-python"), timeout=10, what="the prompt in the snippet")
    snippet = driver.execute_script("return document.getElementById('code-python').textContent")
    page_body = json.loads(driver.execute_script(
        "return document.getElementById('code-curl').textContent").split("-d '")[1].rstrip("'").replace("'\\''", "'"))
    assert page_body["prompt"] == TRICKY_PROMPT
    ran = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "INFINITETALK_API_KEY": key["key"]})
    assert ran.returncode == 0, ran.stderr
    answer = re.search(r"^(\d+) .*'id': '([^']+)'", ran.stdout)
    assert answer and answer[1] in ("200", "202"), ran.stdout
    task_id = answer[2]
    sent = stored_request(server, task_id)
    assert sent["prompt"].encode() == TRICKY_PROMPT.encode()
    assert {name: value for name, value in sent.items() if value is not None} == page_body

    # The time left holds still: nothing from a guess at 2 %, and a later estimate up by a little is noise.
    words = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/playground/eta.js').then(({ TimeLeft }) => {
          const left = new TimeLeft();
          done([[0.02, 42], [0.05, 167], [0.12, 6.3 + 5], [0.2, 13], [0.4, 7], [0.6, 4], [0.7, 200]]
            .map(([fraction, eta]) => left.words('t', fraction, eta)));
        });""")
    assert words == ["", "", "about 15 s left", "about 15 s left", "a few seconds left", "a few seconds left",
                     "about 4 min left"]

    # A file dropped on the speech field is taken as if picked there: uploaded and priced.
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/playground/samples/speech.mp3').then((r) => r.blob()).then((blob) => {
          const drop = new DataTransfer();
          drop.items.add(new File([blob], 'dropped.mp3', { type: 'audio/mpeg' }));
          document.querySelector('#speaker-0 .source').dispatchEvent(
            new DragEvent('drop', { dataTransfer: drop, bubbles: true, cancelable: true }));
          done();
        });""")
    wait_until(lambda: driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").get_attribute("value")
               .endswith("dropped.mp3") and text(driver, "#price").startswith("$")
               and float(driver.find_element(By.ID, "price").get_attribute("data-seconds")) > 5,
               timeout=20, what=f"the dropped speech priced (price: {text(driver, '#price')!r})")
    assert page_errors(driver) == []


def test_the_page_fits_a_phone(playground_server: tuple[Server, dict], browser,  # noqa: ANN001
                               grace_hopper_path: Path, short_speech_wav: Path) -> None:
    server, key = playground_server
    driver = browser
    try:
        for width in (412, 360):
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": True})
            open_with_key(driver, server, key)
            # the widest things the page shows: the picture, the snippets, the history table
            driver.find_element(By.ID, "source-file").send_keys(str(grace_hopper_path))
            driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(short_speech_wav))
            wait_until(lambda: text(driver, "#price").startswith("$"), timeout=30, what="the price")
            sizes = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
            assert sizes == [width, width], f"the page scrolls sideways at {width} px: {sizes}"
            if width == 412:
                driver.save_screenshot(str(SCREENSHOTS / "playground-phone.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert page_errors(driver) == []


def click_in_row(driver, task_id: str, label: str) -> None:  # noqa: ANN001
    """A real click on a history row's button; again if the page redrew the rows in between."""
    def click() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, f'#history tr[data-task-id="{task_id}"] td.actions').find_element(
                By.XPATH, f"button[.='{label}']").click()
        except StaleElementReferenceException:
            return False
        return True

    wait_until(click, timeout=10, what=f"the row's {label} button")


def test_keyboard_only_sample_to_video_then_history(playground_server: tuple[Server, dict],  # noqa: ANN001
                                                     browser) -> None:
    """No mouse: the sample, a face box typed in, a prompt, submit, then the video played with the space bar.
    Then the history row: a frame of the video, the prompt and the inputs' names; play, re-run, delete."""
    server, key = playground_server
    driver = browser
    open_with_key(driver, server, key)

    def press(key_name: str) -> None:
        ActionChains(driver).send_keys(key_name).perform()  # a chain of its own: a chain replays what it holds

    def tab_to(wanted, most: int = 60, on_the_way=None) -> None:  # noqa: ANN001
        for _ in range(most):
            press(Keys.TAB)
            active = driver.switch_to.active_element
            if on_the_way:
                on_the_way(active)
            if wanted(active):
                return
        raise AssertionError(f"Tab never reached it (last: {driver.switch_to.active_element.get_attribute('outerHTML')[:200]})")

    tab_to(lambda e: e.get_attribute("id") == "try-sample")
    press(Keys.ENTER)
    wait_until(lambda: text(driver, "#price").startswith("$") and driver.find_element(By.ID, "picture-box").is_displayed(),
               timeout=30, what=f"the sample priced (price: {text(driver, '#price')!r}, error: {text(driver, '#form-error')!r})")
    assert driver.find_element(By.ID, "source-file").get_attribute("value").endswith("portrait.jpg")

    typed = {"x0": "150", "y0": "90", "x1": "360", "y1": "340"}
    prompt = "a sample, by keyboard"

    def fill(active) -> None:  # noqa: ANN001
        edge = active.get_attribute("data-edge")
        if edge and active.find_element(By.XPATH, "ancestor::div[1]").get_attribute("data-speaker") == "0":
            active.send_keys(typed[edge])
        elif active.get_attribute("id") == "prompt":
            active.send_keys(prompt)

    tab_to(lambda e: e.get_attribute("id") == "submit", on_the_way=fill)
    body = json.loads(text(driver, "#code-curl").split("-d '")[1].rstrip("'"))
    assert body["bbox"] == [{edge: int(value) for edge, value in typed.items()}] and body["prompt"] == prompt
    press(Keys.ENTER)
    task_id = wait_until(lambda: text(driver, "#task-id"), timeout=30, what="the task id")
    status = "return document.getElementById('task').dataset.status"
    wait_until(lambda: driver.execute_script(status) in ("succeeded", "failed"), timeout=120, what="the task to finish")
    assert driver.execute_script(status) == "succeeded", text(driver, "#task-error")
    wait_until(lambda: driver.execute_script("return document.getElementById('result').readyState") >= 2,
               timeout=20, what="the video loaded")
    driver.execute_script("const v = document.getElementById('result'); v.pause(); v.currentTime = 0; v.muted = true")
    tab_to(lambda e: e.get_attribute("id") == "result")
    press(Keys.SPACE)
    wait_until(lambda: driver.execute_script("return document.getElementById('result').currentTime") > 0.2,
               timeout=20, what="the video playing from the space bar")

    # The history row: a frame of the output, the prompt and the inputs' names.
    row_css = f'#history tr[data-task-id="{task_id}"]'
    wait_until(lambda: history_status(driver, task_id) == "succeeded", timeout=20, what="the row")
    wait_until(lambda: driver.execute_script(f"return document.querySelector('{row_css} video.thumb').readyState") >= 1,
               timeout=20, what="the row's frame")
    cells = driver.find_element(By.CSS_SELECTOR, row_css).find_elements(By.TAG_NAME, "td")
    assert cells[1].text.splitlines() == [prompt, "portrait.jpg + speech.mp3"]

    # Re-run: the form holds that task's inputs and settings again, and would send the same request.
    driver.find_element(By.ID, "prompt").clear()
    click_in_row(driver, task_id, "Re-run")
    wait_until(lambda: text(driver, "#price").startswith("$") and driver.find_element(By.ID, "submit").is_enabled(),
               timeout=20, what="the re-run form priced")
    assert driver.find_element(By.ID, "prompt").get_attribute("value") == prompt
    again = json.loads(text(driver, "#code-curl").split("-d '")[1].rstrip("'"))
    assert again == {name: value for name, value in stored_request(server, task_id).items() if value is not None}
    assert [driver.find_element(By.CSS_SELECTOR, f".box-fields[data-speaker='0'] input[data-edge={edge}]")
            .get_attribute("value") for edge in typed] == list(typed.values())

    # Play from the row shows that task's video.
    click_in_row(driver, task_id, "Play")
    wait_until(lambda: driver.execute_script("return document.getElementById('result').dataset.task") == task_id,
               timeout=10, what="the row's video on show")

    # Delete: another key cannot, this key can; then the files are gone and the row says so.
    stranger = make_key(server.data_dir, "stranger", balance=1)
    video_url = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers={"X-API-Key": key["key"]}).json()["outputs"][0]["url"]
    assert httpx.delete(f"{server.url}/v1/tasks/{task_id}", headers={"X-API-Key": stranger["key"]}).status_code == 404
    assert httpx.get(video_url).status_code == 200
    click_in_row(driver, task_id, "Delete")
    driver.switch_to.alert.accept()
    wait_until(lambda: history_status(driver, task_id) == "succeeded, files deleted", timeout=20, what="the row deleted")
    assert httpx.get(video_url).status_code in (404, 410)
    left = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers={"X-API-Key": key["key"]}).json()
    assert left["status"] == "succeeded" and left["outputs"] == [] and left["cost"]["price"] > 0
    assert page_errors(driver) == []
