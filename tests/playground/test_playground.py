"""The playground as a person uses it, in a real headless Chromium against the real server (preview engine,
keys required): key, inputs made on the spot, price, progress, the finished video played to its end, history,
cancel, and the curl snippet copied from the page and run. Then /docs and /redoc with no network."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from api_servers import Server, wait_until
from browser import SCREENSHOTS, page_errors
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.slow


def text(driver, selector: str) -> str:  # noqa: ANN001 - a selenium WebDriver
    return driver.find_element(By.CSS_SELECTOR, selector).text


def history_status(driver, task_id: str) -> str | None:  # noqa: ANN001
    rows = driver.find_elements(By.CSS_SELECTOR, f'#history tr[data-task-id="{task_id}"]')
    return rows[0].find_elements(By.TAG_NAME, "td")[1].text if rows else None


def test_make_watch_play_cancel_and_run_the_snippet(playground_server: tuple[Server, dict], browser,  # noqa: ANN001
                                                    grace_hopper_path: Path, speech_wav: Path,
                                                    long_speech_wav: Path) -> None:
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
    assert driver.find_element(By.ID, "download").get_attribute("href").startswith(f"{server.url}/v1/files/{task_id}/")
    driver.execute_script("document.getElementById('result').currentTime = 1.5")
    wait_until(lambda: history_status(driver, task_id) == "succeeded", timeout=20, what="the task in the history")
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
    driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(long_speech_wav))
    wait_until(lambda: text(driver, "#price").startswith("$") and float(
        driver.find_element(By.ID, "price").get_attribute("data-price")) > price, timeout=30,
        what="the long speech's price")
    driver.find_element(By.ID, "submit").click()
    wait_until(lambda: text(driver, "#task-id") not in ("", task_id), timeout=30, what="the second task")
    second = text(driver, "#task-id")
    wait_until(lambda: driver.find_element(By.ID, "cancel").is_displayed(), timeout=10, what="the cancel button")
    driver.find_element(By.ID, "cancel").click()
    wait_until(lambda: driver.find_element(By.ID, "task").get_attribute("data-status") == "canceled", timeout=60,
               what="the task canceled")
    assert not driver.find_element(By.ID, "result").is_displayed()
    wait_until(lambda: history_status(driver, second) == "canceled", timeout=20, what="the canceled task listed")
    # refunded when canceled before it started, else charged (the README's rule): the row says which
    cost = httpx.get(f"{server.url}/v1/tasks/{second}", headers={"X-API-Key": key["key"]}).json()["cost"]
    row = driver.find_element(By.CSS_SELECTOR, f'#history tr[data-task-id="{second}"]')
    assert row.find_elements(By.TAG_NAME, "td")[2].text == ("refunded" if cost["refunded"] else f"${cost['price']:.2f}")

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
    server, _ = playground_server
    driver = browser
    driver.get(f"{server.url}/docs")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/v1/tasks']"),
               timeout=30, what="Swagger UI's operations")
    paths = {e.get_attribute("data-path") for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/tasks", "/v1/estimate", "/v1/uploads", "/v1/models", "/v1/uploads/{upload_id}"} <= paths
    assert_all_local(driver, server.url)
    driver.save_screenshot(str(SCREENSHOTS / "playground-docs.png"))

    driver.get(f"{server.url}/redoc")
    wait_until(lambda: "Submit a portrait" in driver.find_element(By.TAG_NAME, "body").text, timeout=30,
               what="ReDoc's operations")
    # The one thing ReDoc would fetch from elsewhere, its sidebar's Redocly logo, is refused by the page's
    # Content-Security-Policy before it leaves the machine (the image hides itself); nothing else failed.
    refused = assert_all_local(driver, server.url)
    assert refused <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
    errors = page_errors(driver)
    assert all("logo-mini.svg" in error and "blocked" in error for error in errors), errors


def assert_all_local(driver, origin: str) -> set[str]:  # noqa: ANN001
    """Every resource the page loaded came from our server; returns the ones the browser refused to fetch."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])")
    loaded = [name for name, status in entries if status]
    assert loaded and all(name.startswith(origin) for name in loaded), entries
    return {name for name, status in entries if not status}
