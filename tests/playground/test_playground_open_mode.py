"""Open mode in a real Chromium: the playground, served by the server itself under its Content-Security-Policy,
works with no key (its requests are same-origin), while a page on another site that the same browser opens
cannot create a task or an upload, nor show the playground in a frame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, wait_until
from browser import page_errors
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("open-playground"), env={"INFINITETALK_ENGINE": "instant"},
                open_mode=True) as server:
        yield server


def text(driver, selector: str) -> str:  # noqa: ANN001 - a selenium WebDriver
    return driver.find_element(By.CSS_SELECTOR, selector).text


def task_count(server: Server) -> int:
    return len(httpx.get(f"{server.url}/v1/tasks?limit=100").raise_for_status().json()["data"])


def test_the_playground_works_without_a_key_under_its_policy(open_server: Server, browser,  # noqa: ANN001
                                                              grace_hopper_path: Path, speech_wav: Path) -> None:
    assert "script-src 'self';" in httpx.get(f"{open_server.url}/").headers["content-security-policy"]
    driver = browser
    driver.get(f"{open_server.url}/")
    wait_until(lambda: text(driver, "#key-status") == "no key needed (this server is open to this machine)",
               timeout=20, what=f"the open server's welcome (shown: {text(driver, '#key-status')!r})")
    driver.find_element(By.ID, "source-file").send_keys(str(grace_hopper_path))  # uploads: multipart POSTs
    driver.find_element(By.CSS_SELECTOR, "#speaker-0 .audio-file").send_keys(str(speech_wav))
    wait_until(lambda: text(driver, "#price").startswith("$"), timeout=30,
               what=f"the price (form error: {text(driver, '#form-error')!r})")  # a JSON POST
    driver.find_element(By.ID, "submit").click()
    task_id = wait_until(lambda: text(driver, "#task-id"), timeout=30, what="the task id")
    wait_until(lambda: driver.find_element(By.ID, "task").get_attribute("data-status") in ("succeeded", "failed"),
               timeout=60, what="the task to finish")  # its events: a streamed GET
    assert driver.find_element(By.ID, "task").get_attribute("data-status") == "succeeded", text(driver, "#task-error")
    assert driver.find_element(By.ID, "result").is_displayed()
    assert httpx.get(f"{open_server.url}/v1/tasks/{task_id}").json()["status"] == "succeeded"
    assert page_errors(driver) == []  # a script or style the policy refused would be logged here


ATTACK = """<!doctype html><meta charset="utf-8"><title>attack</title>
<iframe id="framed" src="{target}/"></iframe>
<form id="form" method="post" enctype="multipart/form-data" action="{target}/v1/uploads">
  <input type="hidden" name="file" value="not a file, but a field: the form still posts">
</form>
<script>
  document.getElementById("framed").addEventListener("load", (e) => {{ e.target.dataset.loaded = "yes"; }});
  fetch("{target}/v1/tasks", {{method: "POST", mode: "no-cors", body: JSON.stringify({body})}})
    .then(() => {{ document.title = "sent"; }}, (err) => {{ document.title = "failed: " + err; }});
</script>
"""


def test_a_page_on_another_site_cannot_use_the_open_server(open_server: Server, browser,  # noqa: ANN001
                                                           tmp_path: Path, grace_hopper_path: Path,
                                                           speech_wav: Path) -> None:
    driver = browser
    files = tmp_path / "site"
    files.mkdir()
    for source in (grace_hopper_path, speech_wav):
        (files / source.name).write_bytes(source.read_bytes())
    with FileServer(files) as site:  # http://localhost:<another port>: another site than http://127.0.0.1:<port>
        body = f'{{"image": "{site.url(grace_hopper_path.name)}", "audio": "{site.url(speech_wav.name)}"}}'
        (files / "attack.html").write_text(ATTACK.format(target=open_server.url, body=body))
        before = task_count(open_server)
        driver.get(site.url("attack.html"))
        wait_until(lambda: driver.title == "sent", timeout=20, what=f"the page's fetch (title: {driver.title!r})")
        assert task_count(open_server) == before
        # the frame shows Chromium's error page, not the playground
        frame = driver.find_element(By.ID, "framed")
        wait_until(lambda: frame.get_attribute("data-loaded"), timeout=20, what="the frame to load")
        driver.switch_to.frame(frame)
        try:
            assert driver.find_elements(By.ID, "key-status") == []
        finally:
            driver.switch_to.default_content()
        driver.execute_script("document.getElementById('form').submit()")
        wait_until(lambda: driver.current_url.startswith(open_server.url), timeout=20, what="the form's answer")
        answer = driver.find_element(By.TAG_NAME, "body").text
        assert "cross_site_request" in answer, answer
    assert task_count(open_server) == before
