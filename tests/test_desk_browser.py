"""The web desk in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium): an agent signs in, sees a Telegram customer's 转人工 appear in the queue without a
reload, takes the ticket, searches the knowledge base from the reply box, inserts an entry, sends
it (the fake Bot API receives it), closes the ticket, and the bot answers the customer again.
A wrong password, a POST without the CSRF token and an agent opening the admin page are refused.
An editor accepts a customer's suggested phrasing and the entry's Markdown file changes.

On failure, screenshots of the queue, the ticket and the search page go to ``$KB_DESK_SCREENSHOTS``
(default ``test-artifacts/desk/``)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots.console import add_user
from bots.server import create_app
from bots.store import Pick
from kb.vocabulary import DeskRole
from tests.conftest import ROOT, require
from tests.test_desk_console import content_copy
from tests.test_telegram import FakeTelegram, Served, telegram_config, text_update

CUSTOMER = 3101
PASSWORD = "correct horse battery"
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver fonts-noto-cjk (and pip install selenium)"
SHOTS = Path(os.environ.get("KB_DESK_SCREENSHOTS", ROOT / "test-artifacts" / "desk"))
WAIT = 20


def _chromium() -> tuple[str | None, str | None]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    return browser, shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    browser, driver_path = _chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        browser = None
    require(bool(browser and driver_path), "Chromium, chromium-driver or selenium", INSTALL)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})  # the sign-in page in Chinese
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def desk(sample_config, make_engine, fake, monkeypatch, tmp_path):
    """kb serve with Telegram on (talking to the fake Bot API), over a copy of the content (an
    editor's accept writes there), and three desk accounts."""
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    engine = make_engine()
    for name, role in (("ann", DeskRole.AGENT), ("eve", DeskRole.EDITOR), ("root", DeskRole.ADMIN)):
        add_user(engine.store, name, PASSWORD, role, "zh")
    config = telegram_config(content_copy(sample_config, tmp_path), fake)
    served = Served(create_app(config, engine, reload_every=3600), engine)
    served.content = Path(config.content_dir)
    yield served
    served.close()


@contextlib.contextmanager
def screenshots_on_failure(driver, url: str, pages: dict[str, str]) -> Iterator[None]:
    """On failure: the page as it was, then each of ``pages`` (name → path), as PNGs in SHOTS."""
    try:
        yield
    except BaseException:
        SHOTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(SHOTS / "failure.png"))
        for name, path in pages.items():
            with contextlib.suppress(Exception):
                driver.get(url + path)
                driver.save_screenshot(str(SHOTS / f"{name}.png"))
        raise


def _sign_in(driver, url: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/desk/sign-in")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "submit").click()


def test_an_agent_works_a_telegram_handoff_in_the_browser(browser, desk, fake):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url = browser, desk.url
    wait = WebDriverWait(driver, WAIT)
    pages = {"queue": "/desk/queue", "search": "/desk/search"}
    with screenshots_on_failure(driver, url, pages):
        _sign_in(driver, url, "ann", "wrong password!")
        # The click returns before the refusal's page has come (the password hash takes a while).
        wait.until(seen.text_to_be_present_in_element((By.ID, "message"), "账号或密码不对"))
        assert "账号或密码不对" in driver.find_element(By.ID, "message").text
        _sign_in(driver, url, "ann", PASSWORD)
        wait.until(seen.url_contains("/desk/queue"))
        assert driver.find_element(By.CSS_SELECTOR, "tr.empty")  # nothing yet

        # a customer asks for a person on Telegram; the open queue page shows it without a reload
        assert desk.post(text_update(CUSTOMER, "转人工")).status_code == 200
        fake.wait_sent(CUSTOMER)
        row = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-ticket]")))
        ticket_id = row.get_attribute("data-ticket")
        pages["ticket"] = f"/desk/tickets/{ticket_id}"
        assert "顾客要求人工" in row.text and "telegram" in row.text
        row.find_element(By.TAG_NAME, "a").click()

        wait.until(seen.presence_of_element_located((By.ID, "take"))).click()
        wait.until(seen.text_to_be_present_in_element((By.ID, "agent"), "ann"))
        assert "转人工" in driver.find_element(By.ID, "transcript").text

        # reply with an entry: search from the reply box, insert, edit, send
        driver.find_element(By.ID, "entry-query").send_keys("东西坏了能退吗")
        driver.find_element(By.ID, "entry-find").click()
        wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "#entry-results .insert"))).click()
        box = driver.find_element(By.ID, "reply-text")
        inserted = box.get_attribute("value")
        assert inserted.startswith("结论：") and "\n1. " in inserted
        box.send_keys("\n如有疑问请随时联系我。")
        driver.find_element(By.ID, "send").click()
        wait.until(seen.text_to_be_present_in_element((By.ID, "done"), "已发送"))
        reply = fake.wait_for(lambda: next((m for m in fake.sent(CUSTOMER) if "如有疑问请随时联系我" in m["text"]), None))
        assert inserted.splitlines()[0].removeprefix("结论：")[:8] in reply["text"]

        # close: the bot takes the customer back and answers again
        driver.find_element(By.ID, "close").click()
        wait.until(seen.text_to_be_present_in_element((By.ID, "done"), "机器人重新接待"))
        before = len(fake.sent(CUSTOMER))
        assert desk.post(text_update(CUSTOMER, "东西坏了能退吗")).status_code == 200
        answer = fake.wait_for(lambda: len(fake.sent(CUSTOMER)) > before and fake.sent(CUSTOMER)[-1])
        assert answer["text"].startswith("<b>")

        # the search page: the same entry, whole, with its source
        driver.get(url + "/desk/search")
        driver.find_element(By.ID, "q").send_keys("东西坏了能退吗")
        driver.find_element(By.ID, "find").click()
        first = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#results .result")))
        assert "faq/zh/" in first.find_element(By.CSS_SELECTOR, ".source").text

        # a POST without the CSRF token, and an agent on the admin page, are refused
        status = driver.execute_async_script(
            "const done = arguments[0];"
            f"fetch('/desk/tickets/{ticket_id}/take', {{method: 'POST', credentials: 'same-origin'}})"
            ".then(r => done(r.status));"
        )
        assert status == 403
        driver.get(url + "/desk/users")
        assert "不能打开" in driver.find_element(By.ID, "message").text


def test_the_queue_reads_on_a_phone(browser, desk):
    from selenium.webdriver.common.by import By

    desk.engine.handle("telegram", str(CUSTOMER + 1), "我要投诉！！")
    browser.set_window_size(390, 844)
    with screenshots_on_failure(browser, desk.url, {"queue-phone": "/desk/queue"}):
        _sign_in(browser, desk.url, "ann", PASSWORD)
        cell = browser.find_element(By.CSS_SELECTOR, "tr[data-ticket] td")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, "the page scrolls sideways on a phone"
        assert cell.size["width"] > 300  # rows become cards: a cell spans the screen


def test_an_editor_accepts_a_suggestion_and_the_markdown_file_changes(browser, desk):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    for i in range(2):  # customers picked the entry from a menu for their own words, twice
        desk.engine.store.add_pick(Pick(1000.0 + i, "telegram", "东西坏了可以退么", "return-quality-problem", "menu"))
    entry = desk.content / "faq" / "zh" / "return-quality-problem.md"
    before = entry.read_text(encoding="utf-8")
    with screenshots_on_failure(browser, desk.url, {"suggestions": "/desk/suggestions"}):
        _sign_in(browser, desk.url, "eve", PASSWORD)
        WebDriverWait(browser, WAIT).until(seen.url_contains("/desk/search"))
        browser.find_element(By.ID, "nav-suggestions").click()
        row = WebDriverWait(browser, WAIT).until(seen.presence_of_element_located((By.CSS_SELECTOR, "tr[data-suggestion]")))
        assert "东西坏了可以退么" in row.text and "return-quality-problem" in row.text
        row.find_element(By.CSS_SELECTOR, "button.accept").click()
        done = WebDriverWait(browser, WAIT).until(seen.presence_of_element_located((By.ID, "done")))
        assert "content/faq/zh/return-quality-problem.md" in done.text and "kb build" in done.text
        assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-suggestion]")  # decided: no longer listed
    added = [line for line in entry.read_text(encoding="utf-8").splitlines() if line not in before.splitlines()]
    assert added == ["  - 东西坏了可以退么"]
    assert (ROOT / "content" / "faq" / "zh" / "return-quality-problem.md").read_text(encoding="utf-8") == before
