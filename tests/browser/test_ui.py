#!/usr/bin/env python3
"""Browser tests of the Agenda web UI: headless Chromium driven by Selenium against a
real local cluster (started by scripts/browser-tests.sh).

Two users in two separate browsers, each connected to a different slot's API front:
Alice (slot 1) and Bob (slot 4); a third browser is Alice on another device for a while.
Group membership is by consent, so Bob joins (or declines) Alice's groups through his own
browser. The steps run in order and share state; each one is reported as passed or
failed, then a closing line `N passed, N failed`.

Every wait polls a condition with a deadline (WebDriverWait); nothing sleeps to
synchronise.

Environment:
  AGENDA_BASE_PORT   slot k's API listens on AGENDA_BASE_PORT + k (required)
  AGENDA_DATA_DIR    the cluster's data folder (to find its store processes; required)
  SCREENSHOT_DIR     where screenshots go (default ci-artifacts/screenshots)
  CHROMIUM, CHROMEDRIVER   binaries (default /usr/bin/chromium, /usr/bin/chromedriver)
"""

import datetime as dt
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download anything.

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BASE_PORT = int(os.environ["AGENDA_BASE_PORT"])
DATA_DIR = os.path.realpath(os.environ["AGENDA_DATA_DIR"])
SHOTS = os.path.abspath(os.environ.get("SCREENSHOT_DIR", "ci-artifacts/screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

SLOT_A, SLOT_B = 1, 4
WAIT = 30  # seconds, default deadline of a UI condition
PASSWORD = "correct horse battery"


def api_url(slot):
    return f"http://127.0.0.1:{BASE_PORT + slot}"


def ui_url(slot):
    return f"{api_url(slot)}/ui/"


# ---------------------------------------------------------------- plain HTTP helpers


def http_raw(slot, method, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", BASE_PORT + slot, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def api(slot, method, path, token=None, body=None, headers=None):
    """JSON call; returns (status, headers, json-or-None)."""
    h = {"Accept": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        h["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    h.update(headers or {})
    req = urllib.request.Request(api_url(slot) + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            raw = r.read()
            return r.status, dict(r.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, dict(e.headers), json.loads(raw) if raw else None


# ---------------------------------------------------------------- browser helpers


def new_browser(name, width=1280, height=860):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix=f"agenda-browser-{name}-")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-GB",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(SHOTS, f"chromedriver-{name}.log"))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    d.agenda_profile = profile
    d.agenda_name = name
    d.agenda_console = []
    return d


def wait(d, cond, timeout=WAIT, what="condition"):
    return WebDriverWait(d, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)).until(
        cond, f"{d.agenda_name}: timed out after {timeout}s waiting for {what}"
    )


def visible(d, sel, timeout=WAIT):
    return wait(d, EC.visibility_of_element_located((By.CSS_SELECTOR, sel)), timeout, f"visible {sel}")


def clickable(d, sel, timeout=WAIT):
    return wait(d, EC.element_to_be_clickable((By.CSS_SELECTOR, sel)), timeout, f"clickable {sel}")


def gone(d, sel, timeout=WAIT):
    return wait(d, lambda x: not x.find_elements(By.CSS_SELECTOR, sel), timeout, f"no {sel}")


def text_in(d, sel, text, timeout=WAIT):
    return wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, sel), text), timeout, f"'{text}' in {sel}")


def type_into(el, text):
    el.clear()
    el.send_keys(text)


def set_value(d, el, value):
    """Set an input the keyboard-independent way (datetime-local, date) and fire events."""
    d.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        el,
        value,
    )


def submit(form):
    """Press the form's submit button, as a user would."""
    form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()


def go(d, hash_):
    d.execute_script("location.hash = arguments[0]", hash_)


def settled(x):
    """No toast on screen and no view still loading."""
    if x.find_elements(By.CSS_SELECTOR, "#toasts .toast"):
        return False
    return all("Loading" not in e.text for e in x.find_elements(By.CSS_SELECTOR, ".cal-status, #group-agenda > p"))


def shot(d, name, settle=True):
    if settle:
        wait(d, settled, 15, "a settled page for a screenshot")
    path = os.path.join(SHOTS, f"{name}.png")
    d.save_screenshot(path)
    return path


def token_of(d):
    raw = d.execute_script("return localStorage.getItem('agenda.session')")
    return json.loads(raw)["token"] if raw else None


def collect_console(d):
    try:
        d.agenda_console.extend(d.get_log("browser"))
    except Exception:  # noqa: BLE001 - a dead browser has no log
        pass


def console_errors(d):
    """Script errors and CSP violations (failed requests with 4xx are expected)."""
    collect_console(d)
    bad = []
    for e in d.agenda_console:
        msg = e.get("message", "")
        if e.get("level") == "SEVERE" and (
            "Content Security Policy" in msg
            or "Uncaught" in msg
            or "SyntaxError" in msg
            or "TypeError" in msg
            or "ReferenceError" in msg
        ):
            bad.append(msg)
    return bad


def local(d_: dt.datetime):
    return d_.strftime("%Y-%m-%dT%H:%M")


def fill_appointment(d, title, start, end, privacy=None, description=None):
    dialog = visible(d, "dialog[open] #appointment-form")
    type_into(dialog.find_element(By.NAME, "title"), title)
    set_value(d, dialog.find_element(By.NAME, "start"), local(start))
    set_value(d, dialog.find_element(By.NAME, "end"), local(end))
    if privacy:
        set_value(d, dialog.find_element(By.NAME, "privacy"), privacy)
    if description is not None:
        type_into(dialog.find_element(By.NAME, "description"), description)
    return dialog


def discard_editor(d):
    """Close an editor holding unsaved input: the close button asks first, then discard."""
    d.find_element(By.CSS_SELECTOR, "dialog[open] .modal-head .icon-button").click()
    clickable(d, "dialog[open] #unsaved-discard").click()
    gone(d, "dialog[open]")


def event_by_title(d, title, timeout=WAIT):
    def find(x):
        for el in x.find_elements(By.CSS_SELECTOR, "#calendar .week .event, #calendar .month .event"):
            try:
                if el.find_element(By.CSS_SELECTOR, ".ev-title").text == title:
                    return el
            except StaleElementReferenceException:
                return False
        return False

    return wait(d, find, timeout, f"event '{title}'")


# ---------------------------------------------------------------- cluster helpers


def store_pid(node_id):
    """The pid of this cluster's store child for slot `node_id` (agenda-k)."""
    want_node = f"NODE_ID={node_id}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"__child" not in argv or b"store" not in argv:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        data_dir = next((e[len(b"DATA_DIR=") :].decode() for e in env if e.startswith(b"DATA_DIR=")), "")
        if want_node in env and os.path.realpath(data_dir).startswith(DATA_DIR + os.sep):
            return int(pid)
    return None


# ---------------------------------------------------------------- the scenario


class Ctx:
    a = None  # Alice's browser (slot 1)
    b = None  # Bob's browser (slot 4)
    day = None  # a Wednesday next week, local time
    group_id = None
    group_appt = None
    stopped = None  # pid of a SIGSTOPped store


C = Ctx()


def step_ui_is_served_embedded_with_strict_headers():
    s, h, _ = http_raw(SLOT_A, "GET", "/ui")
    assert s in (301, 308) and h.get("location") == "/ui/", (s, h)
    s, h, body = http_raw(SLOT_A, "GET", "/ui/")
    assert s == 200 and h["content-type"].startswith("text/html"), (s, h)
    csp = h.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "connect-src 'self' ws: wss:" in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    assert h.get("x-content-type-options") == "nosniff"
    assert b'type="module"' in body
    s, h, _ = http_raw(SLOT_A, "GET", "/ui/js/main.js")
    assert s == 200 and h["content-type"].startswith("text/javascript"), (s, h)
    s2, _, _ = http_raw(SLOT_A, "GET", "/ui/js/main.js", {"If-None-Match": h["etag"]})
    assert s2 == 304, s2
    s, h, _ = http_raw(SLOT_A, "GET", "/ui/app.css")
    assert s == 200 and h["content-type"].startswith("text/css") and h.get("cache-control") == "no-cache"
    s, h, _ = http_raw(SLOT_A, "GET", "/ui/no-such-file.js")
    assert s == 404, s
    s, h, _ = http_raw(SLOT_B, "GET", "/ui/favicon.svg")
    assert s == 200 and h["content-type"] == "image/svg+xml", (s, h)


def register(d, slot, username, display, email):
    d.get(ui_url(slot))
    visible(d, "#login-form")
    clickable(d, "a[href='#/register']").click()
    form = visible(d, "#register-form")
    type_into(form.find_element(By.NAME, "username"), username)
    type_into(form.find_element(By.NAME, "display_name"), display)
    type_into(form.find_element(By.NAME, "email"), email)
    type_into(form.find_element(By.NAME, "password"), PASSWORD)
    return form


def step_two_users_register_on_different_slots():
    C.a = new_browser("alice")
    C.b = new_browser("bob")
    C.a.get(ui_url(SLOT_A))
    visible(C.a, "#login-form")
    shot(C.a, "01-login")
    form = register(C.a, SLOT_A, "alice", "Alice Martin", "alice@example.org")
    shot(C.a, "02-register")
    submit(form)
    visible(C.a, "#calendar")
    text_in(C.a, "#whoami", "Alice Martin")
    form = register(C.b, SLOT_B, "bob", "Bob Chen", "bob@example.org")
    submit(form)
    visible(C.b, "#calendar")
    text_in(C.b, "#whoami", "Bob Chen")
    # Live updates connected on both slots.
    visible(C.a, "#live-dot.up")
    visible(C.b, "#live-dot.up")


def step_registration_errors_are_readable():
    d = new_browser("carol", 390, 800)
    try:
        form = register(d, SLOT_B, "alice", "Another Alice", "other@example.org")
        submit(form)
        alert = visible(d, "#register-form .alert")
        assert "taken" in alert.text.lower() or "exists" in alert.text.lower() or "already" in alert.text.lower(), alert.text
        assert d.find_element(By.ID, "topbar").is_displayed() is False
    finally:
        d.quit()
        shutil.rmtree(d.agenda_profile, ignore_errors=True)


def step_session_survives_reload_and_bad_token_returns_to_login():
    C.a.refresh()
    visible(C.a, "#calendar")
    text_in(C.a, "#whoami", "Alice Martin")
    # A token the server rejects: back to the login page, with a message.
    C.a.execute_script(
        "const s = JSON.parse(localStorage.getItem('agenda.session'));"
        "s.token = s.token.slice(0, -4) + 'AAAA';"
        "localStorage.setItem('agenda.session', JSON.stringify(s));"
    )
    C.a.refresh()
    visible(C.a, "#login-form")
    alert = visible(C.a, "#login-form .alert")
    assert "sign in again" in alert.text.lower(), alert.text
    # Wrong password first: a readable error, not a crash.
    form = C.a.find_element(By.ID, "login-form")
    type_into(form.find_element(By.NAME, "login"), "alice")
    type_into(form.find_element(By.NAME, "password"), "not the password")
    submit(form)
    text_in(C.a, "#login-form .alert", "Wrong username")
    type_into(form.find_element(By.NAME, "password"), PASSWORD)
    submit(form)
    visible(C.a, "#calendar")
    text_in(C.a, "#whoami", "Alice Martin")
    visible(C.a, "#live-dot.up")


def step_personal_appointments_and_a_conflict_named_in_words():
    today = dt.date.today()
    monday_next = today + dt.timedelta(days=7 - today.weekday())
    C.day = dt.datetime.combine(monday_next + dt.timedelta(days=2), dt.time(0, 0))
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    wait(C.a, lambda x: C.day.date().isoformat() in x.current_url, what="week url")
    visible(C.a, f"#calendar .day-col[data-date='{C.day.date().isoformat()}']")
    for title, h0, h1 in (("Design review", 10, 11), ("Team lunch", 12, 13)):
        clickable(C.a, "#new-appointment").click()
        dlg = fill_appointment(C.a, title, C.day.replace(hour=h0), C.day.replace(hour=h1), description="Agenda item")
        submit(dlg)
        gone(C.a, "dialog[open]")
        event_by_title(C.a, title)
    # Freebusy one on Thursday.
    clickable(C.a, "#new-appointment").click()
    dlg = fill_appointment(
        C.a, "Doctor", C.day.replace(hour=16) + dt.timedelta(days=1), C.day.replace(hour=17) + dt.timedelta(days=1), "freebusy"
    )
    submit(dlg)
    gone(C.a, "dialog[open]")
    event_by_title(C.a, "Doctor")
    # A few more through the API (the same calls the UI makes), so the week looks lived in.
    token = token_of(C.a)
    monday = C.day - dt.timedelta(days=2)
    for title, day, h0, m0, h1, m1, privacy in (
        ("Morning run", 0, 8, 0, 9, 0, "freebusy"),
        ("Customer call", 1, 11, 0, 12, 0, "full"),
        ("1:1 with Sam", 3, 9, 30, 10, 15, "full"),
        ("Release retro", 4, 15, 0, 16, 30, "full"),
    ):
        start = (monday + dt.timedelta(days=day)).replace(hour=h0, minute=m0).astimezone()
        end = (monday + dt.timedelta(days=day)).replace(hour=h1, minute=m1).astimezone()
        s, _, body = api(
            SLOT_A,
            "POST",
            "/api/appointments",
            token,
            {"title": title, "privacy": privacy, "start_time": start.isoformat(), "end_time": end.isoformat()},
        )
        assert s == 201, (s, body)
    # An overlapping one: 409, explained with the other appointment's title.
    clickable(C.a, "#new-appointment").click()
    dlg = fill_appointment(C.a, "Overlapping call", C.day.replace(hour=10, minute=30), C.day.replace(hour=11, minute=30))
    submit(dlg)
    alert = visible(C.a, "dialog[open] .alert.error")
    text_in(C.a, "dialog[open] .alert.error", "Design review")
    assert "overlaps" in alert.text, alert.text
    shot(C.a, "05-conflict-explained")
    discard_editor(C.a)


def step_edit_with_a_stale_version_explains_and_reloads():
    ev = event_by_title(C.a, "Team lunch")
    appt_id = ev.get_attribute("data-id")
    version = ev.get_attribute("data-version")
    ev.click()
    dlg = visible(C.a, "dialog[open] #appointment-form")
    # Someone else (the same user on another device, via slot 4) changes it meanwhile.
    s, _, body = api(
        SLOT_B, "PATCH", f"/api/appointments/{appt_id}", token_of(C.a), {"description": "Changed elsewhere"}, {"If-Match": version}
    )
    assert s == 200, (s, body)
    type_into(dlg.find_element(By.NAME, "title"), "Team lunch (moved)")
    submit(dlg)
    alert = visible(C.a, "dialog[open] .alert.warning")
    assert "someone else changed" in alert.text.lower(), alert.text
    desc = C.a.find_element(By.CSS_SELECTOR, "dialog[open] textarea[name='description']")
    assert desc.get_attribute("value") == "Changed elsewhere"
    type_into(C.a.find_element(By.CSS_SELECTOR, "dialog[open] input[name='title']"), "Team lunch (moved)")
    submit(C.a.find_element(By.CSS_SELECTOR, "dialog[open] #appointment-form"))
    gone(C.a, "dialog[open]")
    event_by_title(C.a, "Team lunch (moved)")


def step_delete_an_appointment():
    clickable(C.a, "#new-appointment").click()
    dlg = fill_appointment(C.a, "Temporary", C.day.replace(hour=18), C.day.replace(hour=19))
    submit(dlg)
    gone(C.a, "dialog[open]")
    event_by_title(C.a, "Temporary").click()
    visible(C.a, "dialog[open] #appointment-form")
    delete = clickable(C.a, "dialog[open] .button.danger")
    delete.click()
    text_in(C.a, "dialog[open] .button.danger", "Click again")
    delete.click()
    gone(C.a, "dialog[open]")
    wait(C.a, lambda x: all(e.text != "Temporary" for e in x.find_elements(By.CSS_SELECTOR, "#calendar .ev-title")), what="deleted")


def members_heading(d, count):
    """The group page's members heading says `count` (from `member_count`)."""
    return wait(
        d,
        lambda x: any(e.text == f"Members ({count})" for e in x.find_elements(By.CSS_SELECTOR, ".group-page h2")),
        what=f"'Members ({count})'",
    )


def invite(d, username, rank=None):
    """Send an invitation from the open group page, as a user would."""
    form = visible(d, "#add-member-form")
    type_into(form.find_element(By.NAME, "member"), username)
    if rank is not None:
        type_into(form.find_element(By.NAME, "rank"), str(rank))
    submit(form)


def step_bob_is_invited_sees_it_live_and_joins():
    # Bob waits on his groups page: nothing to answer yet.
    go(C.b, "#/groups")
    visible(C.b, "#group-form")
    C.b.execute_script("window.__agendaNoReload = 'bob-1'")
    assert not C.b.find_element(By.ID, "group-invitations").is_displayed()

    go(C.a, "#/groups")
    form = visible(C.a, "#group-form")
    type_into(form.find_element(By.NAME, "name"), "Product team")
    C.a.find_element(By.ID, "gt-n").click()
    type_into(form.find_element(By.NAME, "description"), "Weekly planning and reviews.")
    submit(form)
    text_in(C.a, "#group-name", "Product team")
    C.group_id = C.a.current_url.rsplit("/", 1)[-1]
    invite(C.a, "nobody-here")
    text_in(C.a, "#add-member-form .alert", "Nobody is registered")
    # Inviting is not adding: 202, an "Invited" row, still one member.
    invite(C.a, "bob")
    text_in(C.a, "#add-member-form .alert.success", "Invitation sent to Bob Chen")
    visible(C.a, f"#invited tr[data-username='bob'] button[data-action='withdraw']")
    members_heading(C.a, 1)
    assert not C.a.find_elements(By.CSS_SELECTOR, "#members tr[data-username='bob']")
    shot(C.a, "06-group-invited")

    # Bob: the invitation appears without a reload, with who invited and until when.
    card = visible(C.b, f"#group-invitations li[data-group='{C.group_id}']")
    assert "Product team" in card.text and "Invited by Alice Martin (@alice)" in card.text, card.text
    assert "Answer by" in card.text, card.text
    text_in(C.b, "#invite-count", "1")
    text_in(C.b, "#unread-badge", "1")
    # Until he joins he is nobody in the group.
    s, _, body = api(SLOT_B, "GET", f"/api/groups/{C.group_id}", token_of(C.b))
    assert s in (403, 404), (s, body)
    shot(C.b, "06b-group-invitation")
    clickable(C.b, f"#group-invitations li[data-group='{C.group_id}'] button[data-action='join']").click()
    visible(C.b, f"#group-list .group-card[data-id='{C.group_id}']")
    gone(C.b, f"#group-invitations li[data-group='{C.group_id}']")
    wait(C.b, lambda x: not x.find_element(By.ID, "invite-count").is_displayed(), what="no pending invitation count")
    # Answering it marked the invitation's notification read.
    wait(C.b, lambda x: not x.find_element(By.ID, "unread-badge").is_displayed(), what="Bob's badge cleared")
    assert C.b.execute_script("return window.__agendaNoReload") == "bob-1", "Bob's page was reloaded"

    # Alice: her open group page shows Bob as a member, live.
    visible(C.a, "#members tr[data-username='bob']")
    members_heading(C.a, 2)
    gone(C.a, "#invited")
    shot(C.a, "06c-group-joined")

    # Bob goes to his calendar with the panel open, for what comes next.
    go(C.b, f"#/week/{C.day.date().isoformat()}")
    visible(C.b, "#calendar .week")
    clickable(C.b, "#bell").click()
    visible(C.b, "#notif-panel")
    item = visible(C.b, f"#notif-list li[data-kind='group_invite'][data-group='{C.group_id}']")
    assert "Alice Martin invited you to join the group “Product team”" in item.text, item.text
    visible(C.b, f"#notif-list li[data-group='{C.group_id}'] .pill.ok")


def step_group_invitation_arrives_live_and_is_accepted():
    go(C.a, f"#/groups/{C.group_id}")
    clickable(C.a, "#group-new-appointment").click()
    dlg = fill_appointment(C.a, "Sprint planning", C.day.replace(hour=14), C.day.replace(hour=15, minute=30))
    wait(C.a, lambda x: dlg.find_element(By.NAME, "group").get_attribute("value") == C.group_id, what="group preselected")
    submit(dlg)
    gone(C.a, "dialog[open]")
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    ev = event_by_title(C.a, "Sprint planning")
    C.group_appt = ev.get_attribute("data-id")
    assert ev.get_attribute("data-status") == "tentative", ev.get_attribute("data-status")
    C.a.execute_script("window.__agendaNoReload = 'alice-1'")

    # Bob: the invitation shows up in the open panel without a reload, with Accept.
    item = visible(C.b, f"#notif-list li[data-kind='invite'][data-appointment='{C.group_appt}']")
    assert "Alice Martin invited you" in item.text, item.text
    text_in(C.b, "#unread-badge", "1")
    clickable(C.b, f"#notif-list li[data-appointment='{C.group_appt}'] button[data-action='accept']")
    shot(C.b, "07-notification-panel")
    assert C.b.execute_script("return window.__agendaNoReload") == "bob-1", "Bob's page was reloaded"
    # Pending invitations are in Bob's agenda by default, set apart until he answers.
    clickable(C.b, "#notif-close").click()
    go(C.b, f"#/week/{C.day.date().isoformat()}")
    visible(C.b, "#show-pending")
    assert C.b.find_element(By.ID, "show-pending").is_selected(), "invitations are hidden by default"
    pending = wait(
        C.b,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .week .event.pending[data-id='{C.group_appt}']"),
        what="pending invitation in the agenda",
    )[0]
    assert pending.get_attribute("data-mine") == "pending"
    shot(C.b, "08-pending-invitation-week")
    clickable(C.b, "#bell").click()
    accept = clickable(C.b, f"#notif-list li[data-appointment='{C.group_appt}'] button[data-action='accept']")
    accept.click()
    visible(C.b, f"#notif-list li[data-appointment='{C.group_appt}'] .pill.ok")
    wait(
        C.b,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .week .event[data-id='{C.group_appt}'][data-mine='accepted']"),
        what="accepted in Bob's agenda",
    )

    # Alice: her open week view shows it confirmed, through her own notification.
    wait(
        C.a,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .week .event[data-id='{C.group_appt}'][data-status='confirmed']"),
        what="confirmed in Alice's agenda",
    )
    status = C.a.find_element(By.CSS_SELECTOR, f"#calendar .week .event[data-id='{C.group_appt}'] .ev-status")
    assert status.text.lower() == "confirmed", status.text
    assert C.a.execute_script("return window.__agendaNoReload") == "alice-1", "Alice's page was reloaded"
    wait(C.a, lambda x: x.find_element(By.ID, "unread-badge").is_displayed(), what="Alice's unread badge")
    clickable(C.b, "#notif-close").click()
    shot(C.a, "03-week")
    shutil.copyfile(os.path.join(SHOTS, "03-week.png"), os.path.join(REPO, "docs", "screenshots", "week.png"))
    # Her panel says who accepted; mark everything read.
    clickable(C.a, "#bell").click()
    item = visible(C.a, "#notif-list li[data-kind='invitation_accepted']")
    assert "Bob Chen accepted" in item.text, item.text
    visible(C.a, "#notif-list li[data-kind='appointment_confirmed']")
    shot(C.a, "07b-notifications-alice")
    clickable(C.a, "#mark-all-read").click()
    wait(C.a, lambda x: not x.find_element(By.ID, "unread-badge").is_displayed(), what="badge cleared")
    assert not C.a.find_elements(By.CSS_SELECTOR, "#notif-list li.unread")
    clickable(C.a, "#notif-close").click()


def step_a_moved_meeting_stays_in_view_and_is_answered_from_the_notice():
    # Alice moves the confirmed meeting: Bob had to accept it, so he is asked again (RFC
    # 6638). It used to vanish from his grid (pending items were hidden) and the "was
    # changed" notice had no Accept.
    s, _, cur = api(SLOT_A, "GET", f"/api/appointments/{C.group_appt}", token_of(C.a))
    assert s == 200, (s, cur)
    moved_start = C.day.replace(hour=15).astimezone()
    s, _, body = api(
        SLOT_A,
        "PATCH",
        f"/api/appointments/{C.group_appt}",
        token_of(C.a),
        {"start_time": moved_start.isoformat(), "end_time": C.day.replace(hour=16, minute=30).astimezone().isoformat()},
        {"If-Match": str(cur["version"])},
    )
    assert s == 200, (s, body)
    go(C.b, f"#/week/{C.day.date().isoformat()}")
    ev = wait(
        C.b,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .week .event.pending[data-id='{C.group_appt}'][data-mine='pending']"),
        what="the moved meeting in Bob's grid, awaiting his answer",
    )[0]
    assert "3:00" in ev.text or "15:00" in ev.text, ev.text
    clickable(C.b, "#bell").click()
    sel = f"#notif-list li[data-kind='appointment_updated'][data-appointment='{C.group_appt}']"
    item = visible(C.b, sel)
    assert "Alice Martin moved “Sprint planning”" in item.text, item.text
    accept = clickable(C.b, f"{sel} button[data-action='accept']")
    # Only the newest notice is answered: the first invitation names the old time.
    first = C.b.find_element(By.CSS_SELECTOR, f"#notif-list li[data-kind='invite'][data-appointment='{C.group_appt}']")
    assert not first.find_elements(By.CSS_SELECTOR, "button[data-action='accept']"), first.text
    shot(C.b, "07d-moved-meeting-notice")
    accept.click()
    text_in(C.b, f"{sel} .pill.ok", "Accepted")
    clickable(C.b, "#notif-close").click()
    wait(
        C.b,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .week .event[data-id='{C.group_appt}'][data-mine='accepted']"),
        what="accepted again in Bob's grid",
    )
    wait(
        C.a,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .week .event[data-id='{C.group_appt}'][data-status='confirmed']"),
        what="confirmed again in Alice's agenda",
    )


def step_another_window_of_the_same_user_follows_changes():
    # Alice has the week open in two windows; what she books in one appears in the other
    # (no notification is sent to the person who acted).
    first = C.a.current_window_handle
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    visible(C.a, "#calendar .week")
    C.a.execute_script("window.__agendaNoReload = 'alice-window-1'")
    C.a.switch_to.new_window("window")
    try:
        C.a.get(ui_url(SLOT_A) + f"#/week/{C.day.date().isoformat()}")
        clickable(C.a, "#new-appointment").click()
        thursday = C.day + dt.timedelta(days=1)
        dlg = fill_appointment(C.a, "Dentist", thursday.replace(hour=7), thursday.replace(hour=7, minute=45))
        submit(dlg)
        gone(C.a, "dialog[open]")
        event_by_title(C.a, "Dentist")
    finally:
        C.a.close()
        C.a.switch_to.window(first)
    event_by_title(C.a, "Dentist")
    assert C.a.execute_script("return window.__agendaNoReload") == "alice-window-1", "the first window was reloaded"


def step_a_second_invitation_is_declined_and_a_third_withdrawn():
    # A hierarchical group: the invitation offers a rank.
    go(C.a, "#/groups")
    form = visible(C.a, "#group-form")
    type_into(form.find_element(By.NAME, "name"), "Leadership")
    C.a.find_element(By.ID, "gt-h").click()
    submit(form)
    text_in(C.a, "#group-name", "Leadership")
    C.group2_id = C.a.current_url.rsplit("/", 1)[-1]
    clickable(C.b, "#bell").click()
    visible(C.b, "#notif-panel")
    invite(C.a, "bob@example.org", rank=10)
    text_in(C.a, "#add-member-form .alert.success", "Invitation sent to Bob Chen")
    row = visible(C.a, "#invited tr[data-username='bob']")
    assert "10" in row.text, row.text

    # Bob declines it from the notification panel.
    sel = f"#notif-list li[data-kind='group_invite'][data-group='{C.group2_id}']"
    decline = clickable(C.b, f"{sel} button[data-action='decline']")
    item = C.b.find_element(By.CSS_SELECTOR, sel)
    assert "Alice Martin invited you to join the group “Leadership”" in item.text, item.text
    assert "offered rank 10" in item.text, item.text
    shot(C.b, "07c-group-invitation-in-panel")
    decline.click()
    text_in(C.b, f"{sel} .pill", "Declined")
    s, _, body = api(SLOT_B, "GET", "/api/me/group-invitations", token_of(C.b))
    assert s == 200 and body["invitations"] == [], (s, body)

    # Alice hears about it, and her "Invited" list empties by itself.
    gone(C.a, "#invited")
    members_heading(C.a, 1)
    clickable(C.a, "#bell").click()
    item = visible(C.a, f"#notif-list li[data-kind='group_invite_declined'][data-group='{C.group2_id}']")
    assert "Bob Chen declined your invitation to the group “Leadership”" in item.text, item.text
    clickable(C.a, "#notif-close").click()

    # A third invitation, withdrawn before Bob answers: it disappears from his groups page.
    clickable(C.b, "#notif-close").click()
    go(C.b, "#/groups")
    visible(C.b, "#group-form")
    invite(C.a, "bob", rank=5)
    text_in(C.a, "#add-member-form .alert.success", "Invitation sent to Bob Chen")
    card = visible(C.b, f"#group-invitations li[data-group='{C.group2_id}']")
    assert "Offered rank 5" in card.text, card.text
    text_in(C.b, "#invite-count", "1")
    shot(C.b, "06d-groups-with-invitation")
    clickable(C.a, "#invited tr[data-username='bob'] button[data-action='withdraw']").click()
    gone(C.a, "#invited")
    gone(C.b, f"#group-invitations li[data-group='{C.group2_id}']")
    wait(C.b, lambda x: not x.find_element(By.ID, "invite-count").is_displayed(), what="no pending invitation count")
    assert not C.b.find_elements(By.CSS_SELECTOR, f"#group-list .group-card[data-id='{C.group2_id}']")
    clickable(C.b, "#bell").click()
    item = visible(C.b, f"#notif-list li[data-kind='group_invite_withdrawn'][data-group='{C.group2_id}']")
    assert "Alice Martin withdrew your invitation to the group “Leadership”" in item.text, item.text
    clickable(C.b, "#notif-close").click()
    assert C.b.execute_script("return window.__agendaNoReload") == "bob-1", "Bob's page was reloaded"
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    visible(C.a, "#calendar .week")


def step_month_view_and_navigation():
    clickable(C.a, "#view-month").click()
    visible(C.a, "#calendar .month")
    event_by_title(C.a, "Sprint planning")
    title = C.a.find_element(By.ID, "cal-title").text
    shot(C.a, "04-month")
    clickable(C.a, "#cal-next").click()
    wait(C.a, lambda x: x.find_element(By.ID, "cal-title").text != title, what="next month")
    clickable(C.a, "#cal-prev").click()
    text_in(C.a, "#cal-title", title)
    clickable(C.a, "#cal-today").click()
    wait(C.a, lambda x: dt.date.today().isoformat() in x.current_url, what="today")
    clickable(C.a, "#view-week").click()
    visible(C.a, "#calendar .week")


def week_range_iso(day):
    monday = dt.datetime.combine(day.date() - dt.timedelta(days=day.weekday()), dt.time(0, 0)).astimezone()
    return monday.isoformat(), (monday + dt.timedelta(days=7)).isoformat()


def step_the_calendar_follows_every_page_of_the_agenda():
    start, end = week_range_iso(C.day)
    s, _, body = api(SLOT_A, "GET", "/api/agenda?" + urllib.parse.urlencode({"start": start, "end": end}), token_of(C.a))
    assert s == 200 and body["next_cursor"] is None, (s, body)
    titles = sorted(a["title"] for a in body["appointments"])
    assert len(titles) > 4, titles
    # Small pages (a diagnostic setting of the UI): the week still shows every appointment.
    C.a.execute_script("localStorage.setItem('agenda.pageSize', '2')")
    try:
        go(C.a, "#/groups")
        visible(C.a, "#group-form")
        go(C.a, f"#/week/{C.day.date().isoformat()}")
        wait(C.a, lambda x: int(x.find_element(By.ID, "calendar").get_attribute("data-pages") or 0) > 1, what="several pages")
        text_in(C.a, ".cal-status", f"{len(titles)} appointments")
        shown = sorted(e.text for e in C.a.find_elements(By.CSS_SELECTOR, "#calendar .week .ev-title"))
        assert shown == titles, (shown, titles)
    finally:
        C.a.execute_script("localStorage.removeItem('agenda.pageSize')")


PRIVACY_HELP = {
    "full": "people in your groups see the title",
    "freebusy": "only people senior to you in a hierarchical group you both belong to see the title; others see “Busy”",
    "private": "only the people invited see the title; everyone else sees “Busy”",
}


def step_the_editor_explains_each_privacy_level():
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    tuesday = C.day - dt.timedelta(days=1)
    for title, h0, privacy in (("Salary talk", 14, "private"), ("Physio", 16, "freebusy")):
        clickable(C.a, "#new-appointment").click()
        dlg = fill_appointment(C.a, title, tuesday.replace(hour=h0), tuesday.replace(hour=h0 + 1), description="Not for everyone")
        select = dlg.find_element(By.NAME, "privacy")
        options = [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")]
        assert options == ["full", "freebusy", "private"], options
        hint_id = select.get_attribute("aria-describedby")
        # The explanation next to the choice follows it.
        for level in ("full", "freebusy", "private", privacy):
            set_value(C.a, select, level)
            text_in(C.a, f"dialog[open] #{hint_id}", PRIVACY_HELP[level])
        if privacy == "private":
            shot(C.a, "05b-editor-privacy")
        submit(dlg)
        gone(C.a, "dialog[open]")
        event_by_title(C.a, title)


def step_group_agenda_respects_privacy():
    # Bob has a private appointment; Alice sees only that he is busy.
    s, _, body = api(
        SLOT_B,
        "POST",
        "/api/appointments",
        token_of(C.b),
        {
            "title": "Bob's secret dentist",
            "privacy": "freebusy",
            "start_time": (C.day.replace(hour=9)).astimezone().isoformat(),
            "end_time": (C.day.replace(hour=10)).astimezone().isoformat(),
        },
    )
    assert s == 201, (s, body)
    monday = C.day - dt.timedelta(days=2)
    go(C.a, f"#/groups/{C.group_id}/agenda/{monday.date().isoformat()}/7")
    visible(C.a, "#group-agenda table")
    rows = wait(C.a, lambda x: x.find_elements(By.CSS_SELECTOR, "#group-agenda tbody tr"), what="member rows")
    assert len(rows) == 2, len(rows)
    masked = visible(C.a, "#group-agenda li[data-masked='true']")
    assert masked.text.endswith("Busy"), masked.text
    assert "secret" not in C.a.find_element(By.ID, "group-agenda").text
    text_in(C.a, "#group-agenda", "Sprint planning")
    # Alice sees her own private and free/busy appointments in full.
    text_in(C.a, "#group-agenda", "Salary talk")
    text_in(C.a, "#group-agenda", "Physio")
    shot(C.a, "09-group-agenda")

    # Bob, in the same (non-hierarchical) group, is not senior to Alice: on Tuesday he sees
    # her full appointment's title, and "Busy" for the private and the free/busy one.
    alice_id = json.loads(C.a.execute_script("return localStorage.getItem('agenda.session')"))["user"]["id"]
    go(C.b, f"#/groups/{C.group_id}/agenda/{monday.date().isoformat()}/7")
    tuesday_cell = f"#group-agenda tbody tr[data-user='{alice_id}'] td:nth-of-type(2)"
    items = wait(
        C.b,
        lambda x: (lambda li: li if len(li) == 3 else False)(x.find_elements(By.CSS_SELECTOR, f"{tuesday_cell} li")),
        what="Alice's three Tuesday appointments in Bob's group agenda",
    )
    titles = [li.find_element(By.CSS_SELECTOR, ".busy-title").text for li in items]
    assert titles == ["Customer call", "Busy", "Busy"], titles
    assert [li.get_attribute("data-masked") for li in items] == ["false", "true", "true"]
    text = C.b.find_element(By.ID, "group-agenda").text
    for secret in ("Salary talk", "Physio", "Doctor", "Morning run"):
        assert secret not in text, f"{secret!r} shown to Bob"
    text_in(C.b, "#group-agenda", "Bob's secret dentist")  # his own
    shot(C.b, "09b-group-agenda-bob")
    assert not C.b.find_elements(By.ID, "group-agenda-truncated")

    # An answer cut at its size bound (`truncated`) is said so on the page. Filling a real
    # one takes thousands of appointments, so the browser rewrites the answer instead.
    C.b.execute_script(
        """
        const real = window.fetch;
        window.__agendaRealFetch = real;
        window.fetch = async (url, opts) => {
          const res = await real(url, opts);
          if (!/\\/api\\/groups\\/[^/]+\\/agenda/.test(String(url)) || !res.ok) return res;
          const body = await res.json();
          body.truncated = true;
          return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
        };
        """
    )
    try:
        clickable(C.b, ".ga-page button[aria-label='Later']").click()
        text_in(C.b, "#group-agenda-truncated", "Too many appointments to show; pick a shorter range")
    finally:
        C.b.execute_script("window.fetch = window.__agendaRealFetch")


def title_hidden_events(d):
    """The week view's events whose title is not readable: squeezed to (nearly) nothing or
    pushed outside the event's box. Returns their titles with the measured boxes."""
    return d.execute_script(
        """
        const bad = [];
        for (const ev of document.querySelectorAll('#calendar .week .event')) {
          const t = ev.querySelector('.ev-title');
          const e = ev.getBoundingClientRect();
          const r = t ? t.getBoundingClientRect() : null;
          if (!r || r.height < 8 || r.width < 16 || r.top < e.top - 1 || r.bottom > e.bottom + 1) {
            bad.push(`${t ? t.textContent : '?'}: event ${Math.round(e.width)}x${Math.round(e.height)}, `
              + (r ? `title ${Math.round(r.width)}x${Math.round(r.height)} at +${Math.round(r.top - e.top)}` : 'no title'));
          }
        }
        return bad;
        """
    )


def step_every_title_shows_in_the_week_view():
    # A one-hour group meeting (title, time and status do not all fit in one hour's
    # height): the title used to shrink to nothing, leaving "2:00 – 3:00 PM / TENTATIVE".
    friday = C.day + dt.timedelta(days=2)
    s, _, body = api(
        SLOT_A,
        "POST",
        "/api/appointments",
        token_of(C.a),
        {
            "title": "Weekly sync",
            "group_id": C.group_id,
            "start_time": friday.replace(hour=9).astimezone().isoformat(),
            "end_time": friday.replace(hour=10).astimezone().isoformat(),
        },
    )
    assert s == 201, (s, body)
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    ev = event_by_title(C.a, "Weekly sync")
    assert ev.find_element(By.CSS_SELECTOR, ".ev-status").text, "the meeting shows its status"
    wait(C.a, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#calendar .week .event")) >= 8, what="the whole week")
    hidden = title_hidden_events(C.a)
    assert not hidden, f"titles not shown: {hidden}"
    # Narrower columns (a small laptop window) must not hide them either.
    C.a.set_window_size(900, 860)
    try:
        wait(C.a, lambda x: x.find_element(By.CSS_SELECTOR, "#calendar .week").size["width"] < 900, what="a narrower week")
        hidden = title_hidden_events(C.a)
        assert not hidden, f"titles not shown at 900 px: {hidden}"
        shot(C.a, "03b-week-narrow")
    finally:
        C.a.set_window_size(1280, 860)


def step_typing_a_start_date_keeps_the_end():
    # Typing a date with the keyboard passes through years 2, 20, 202: the end used to be
    # written with an unpadded year, which the field refused and emptied.
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    clickable(C.a, "#new-appointment").click()
    dlg = visible(C.a, "dialog[open] #appointment-form")
    start = dlg.find_element(By.NAME, "start")
    end = dlg.find_element(By.NAME, "end")
    set_value(C.a, start, "2027-01-04T09:00")
    set_value(C.a, end, "2027-01-04T10:30")
    # The field's segments come in the browser's locale order (en-US in headless Chromium:
    # month, day, year); the focus starts on the first one.
    order = C.a.execute_script(
        "return new Intl.DateTimeFormat(undefined, {year: 'numeric', month: '2-digit', day: '2-digit'})"
        ".formatToParts(new Date(2027, 5, 15)).filter(p => p.type !== 'literal').map(p => p.type)"
    )
    digits = {"day": "15", "month": "06", "year": "2027"}
    start.send_keys("".join(digits[p] for p in order))
    wait(C.a, lambda x: start.get_attribute("value").startswith("2027-06-15"), what=f"the typed start date ({order})")
    assert start.get_attribute("value") == "2027-06-15T09:00", start.get_attribute("value")
    assert end.get_attribute("value") == "2027-06-15T10:30", f"the end did not follow: {end.get_attribute('value')!r}"
    discard_editor(C.a)


def step_a_hierarchical_booking_says_booked_not_invited():
    # In a hierarchical group a junior member is booked at once (`auto`): the notice says
    # so, with nothing to answer. It used to read "invited you".
    ta, tb = token_of(C.a), token_of(C.b)
    s, _, g = api(SLOT_A, "POST", "/api/groups", ta, {"name": "Ops", "group_type": "hierarchical", "creator_rank": 10})
    assert s == 201, (s, g)
    s, _, body = api(SLOT_A, "POST", f"/api/groups/{g['id']}/members", ta, {"username": "bob", "rank": 1})
    assert s == 202, (s, body)
    s, _, body = api(SLOT_B, "POST", f"/api/groups/{g['id']}/join", tb)
    assert s == 200, (s, body)
    thursday = C.day + dt.timedelta(days=1)
    s, _, appt = api(
        SLOT_A,
        "POST",
        "/api/appointments",
        ta,
        {
            "title": "Ops review",
            "group_id": g["id"],
            "start_time": thursday.replace(hour=13).astimezone().isoformat(),
            "end_time": thursday.replace(hour=14).astimezone().isoformat(),
        },
    )
    assert s == 201, (s, appt)
    try:
        clickable(C.b, "#bell").click()
        sel = f"#notif-list li[data-kind='invite'][data-appointment='{appt['id']}']"
        item = visible(C.b, sel)
        text_in(C.b, f"{sel} .pill.ok", "In your agenda")
        item = C.b.find_element(By.CSS_SELECTOR, sel)
        assert "Alice Martin booked you into “Ops review”" in item.text, item.text
        assert "invited you" not in item.text, item.text
        assert not item.find_elements(By.CSS_SELECTOR, "button[data-action='accept']"), "nothing to accept"
        clickable(C.b, "#notif-close").click()
    finally:
        # Alice would otherwise be senior to Bob in a group they share, which changes
        # what each sees of the other in later steps.
        s, _, body = api(SLOT_A, "DELETE", f"/api/groups/{g['id']}", ta)
        assert s == 204, (s, body)


def step_day_and_list_views():
    # One day on the time grid, and a list of the coming 30 days that has something.
    go(C.a, f"#/day/{C.day.date().isoformat()}")
    visible(C.a, "#calendar .week")
    cols = C.a.find_elements(By.CSS_SELECTOR, "#calendar .week .day-col")
    assert [c.get_attribute("data-date") for c in cols] == [C.day.date().isoformat()], "one column, the day asked for"
    for title in ("Design review", "Team lunch (moved)", "Sprint planning"):
        event_by_title(C.a, title)
    head = C.a.find_element(By.CSS_SELECTOR, "#calendar .week-head .day-head")
    grid_col = cols[0]
    assert abs(head.rect["x"] - grid_col.rect["x"]) <= 1 and abs(head.rect["width"] - grid_col.rect["width"]) <= 1, (
        head.rect,
        grid_col.rect,
    )
    assert C.a.find_element(By.ID, "view-day").get_attribute("aria-current") == "page"
    assert str(C.day.day) in C.a.find_element(By.ID, "cal-title").text
    shot(C.a, "03c-day")
    clickable(C.a, "#cal-next").click()
    nxt = (C.day + dt.timedelta(days=1)).date().isoformat()
    wait(C.a, lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .day-col[data-date='{nxt}']"), what="the next day")
    event_by_title(C.a, "Doctor")  # Thursday's

    monday = (C.day - dt.timedelta(days=2)).date().isoformat()
    go(C.a, f"#/list/{monday}")
    sections = wait(C.a, lambda x: x.find_elements(By.CSS_SELECTOR, "#calendar .list-view .list-day"), what="the list")
    dates = [e.get_attribute("data-date") for e in sections]
    assert dates == sorted(dates), dates
    assert dates[0] == monday, dates  # Monday has "Morning run"
    assert C.day.date().isoformat() in dates, dates
    for sec in sections:
        assert sec.find_elements(By.CSS_SELECTOR, ".list-event"), f"an empty day is listed: {sec.text}"
    wednesday = C.a.find_element(By.CSS_SELECTOR, f"#calendar .list-day[data-date='{C.day.date().isoformat()}']")
    titles = [e.text for e in wednesday.find_elements(By.CSS_SELECTOR, ".ev-title")]
    assert titles[:2] == ["Design review", "Team lunch (moved)"], titles
    shot(C.a, "03d-list")
    # Far in the future: nothing, said in words.
    go(C.a, "#/list/2099-01-05")
    text_in(C.a, "#list-empty", "Nothing planned")
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    visible(C.a, "#calendar .week")


def step_unsaved_changes_are_not_lost_by_escape():
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    clickable(C.a, "#new-appointment").click()
    dlg = visible(C.a, "dialog[open] #appointment-form")
    type_into(dlg.find_element(By.NAME, "title"), "Half-typed plan")
    dlg.find_element(By.NAME, "title").send_keys(Keys.ESCAPE)
    bar = visible(C.a, "dialog[open] #unsaved")
    assert "unsaved changes" in bar.text, bar.text
    clickable(C.a, "#unsaved-keep").click()
    gone(C.a, "#unsaved")
    assert C.a.find_element(By.CSS_SELECTOR, "dialog[open] input[name='title']").get_attribute("value") == "Half-typed plan"
    # The close button asks too; discarding closes it.
    clickable(C.a, "dialog[open] .modal-head .icon-button").click()
    visible(C.a, "dialog[open] #unsaved")
    shot(C.a, "05b-unsaved-changes", settle=False)
    clickable(C.a, "#unsaved-discard").click()
    gone(C.a, "dialog[open]")
    # An untouched editor closes at once.
    clickable(C.a, "#new-appointment").click()
    dlg = visible(C.a, "dialog[open] #appointment-form")
    dlg.find_element(By.NAME, "title").send_keys(Keys.ESCAPE)
    gone(C.a, "dialog[open]")
    assert not [e for e in C.a.find_elements(By.CSS_SELECTOR, "#calendar .ev-title") if e.text == "Half-typed plan"]


def appointment_start(d, appt_id):
    s, _, body = api(SLOT_A, "GET", f"/api/appointments/{appt_id}", token_of(d))
    assert s == 200, (s, body)
    return dt.datetime.fromisoformat(body["start_time"].replace("Z", "+00:00")), dt.datetime.fromisoformat(
        body["end_time"].replace("Z", "+00:00")
    )


def step_drag_to_move_resize_and_create_with_a_keyboard_alternative():
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    ev = event_by_title(C.a, "Design review")
    appt = ev.get_attribute("data-id")
    version = ev.get_attribute("data-version")
    ten = C.day.replace(hour=10).astimezone()
    assert appointment_start(C.a, appt)[0] == ten
    # Drag it down an hour (48 px): saved at 11:00, and no editor opens.
    ActionChains(C.a).click_and_hold(ev).move_by_offset(0, 20).move_by_offset(0, 28).release().perform()
    wait(
        C.a,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#calendar .event[data-id='{appt}']:not([data-version='{version}'])"),
        what="the moved appointment reloaded",
    )
    assert not C.a.find_elements(By.CSS_SELECTOR, "dialog[open]"), "a drag opened the editor"
    assert appointment_start(C.a, appt) == (ten + dt.timedelta(hours=1), ten + dt.timedelta(hours=2))
    # Stretch its end over "Team lunch (moved)" at 12:00: refused, said in words, unchanged.
    ev = C.a.find_element(By.CSS_SELECTOR, f"#calendar .event[data-id='{appt}']")
    handle = ev.find_element(By.CSS_SELECTOR, ".resize-handle")
    ActionChains(C.a).click_and_hold(handle).move_by_offset(0, 12).move_by_offset(0, 12).release().perform()
    toast = visible(C.a, "#toasts .toast.error")
    assert "Team lunch (moved)" in toast.text and "overlap" in toast.text, toast.text
    assert appointment_start(C.a, appt) == (ten + dt.timedelta(hours=1), ten + dt.timedelta(hours=2))
    # The keyboard: Alt+Up four times moves it back to 10:00, saved once the keys rest.
    def back_at_eleven(x):
        found = x.find_elements(By.CSS_SELECTOR, f"#calendar .event[data-id='{appt}']")
        return found[0] if found and "11:00" in found[0].get_attribute("title") else False

    ev = wait(C.a, back_at_eleven, what="the grid back at 11:00 after the refusal")
    C.a.execute_script("arguments[0].focus()", ev)
    for _ in range(4):
        ActionChains(C.a).key_down(Keys.ALT).send_keys(Keys.ARROW_UP).key_up(Keys.ALT).perform()
    wait(C.a, lambda x: appointment_start(x, appt)[0] == ten, what="the keyboard move saved")
    assert appointment_start(C.a, appt)[1] == ten + dt.timedelta(hours=1)
    # Drag across Friday's empty 13:00–14:30: the editor opens with that time.
    friday = (C.day + dt.timedelta(days=2)).date().isoformat()
    col = C.a.find_element(By.CSS_SELECTOR, f"#calendar .day-col[data-date='{friday}']")
    C.a.execute_script("document.getElementById('week-scroll').scrollTop = 11 * 48")
    # Viewport coordinates of 13:00 in Friday's column (the column is taller than the view).
    x, y = C.a.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left + r.width / 2, r.top + 13 * 48 + 2];", col
    )
    drag = ActionBuilder(C.a)
    drag.pointer_action.move_to_location(int(x), int(y)).pointer_down().move_to_location(int(x), int(y) + 30)
    drag.pointer_action.move_to_location(int(x), int(y) + 72).pointer_up()
    drag.perform()
    dlg = visible(C.a, "dialog[open] #appointment-form")
    assert dlg.find_element(By.NAME, "start").get_attribute("value") == f"{friday}T13:00"
    assert dlg.find_element(By.NAME, "end").get_attribute("value") == f"{friday}T14:30"
    shot(C.a, "05c-drag-to-create", settle=False)
    C.a.find_element(By.CSS_SELECTOR, "dialog[open] .modal-head .icon-button").click()
    gone(C.a, "dialog[open]")


def step_week_columns_zone_and_scroll_position():
    go(C.a, f"#/week/{C.day.date().isoformat()}")
    visible(C.a, "#calendar .week .day-col")
    # The day headers line up with the day columns (the grid's scrollbar used to shift
    # the columns 13 px left of their headers by Sunday).
    drift = C.a.execute_script(
        """
        const heads = [...document.querySelectorAll('#calendar .week-head .day-head')];
        const cols = [...document.querySelectorAll('#calendar .week-grid .day-col')];
        return heads.map((hd, i) => {
          const a = hd.getBoundingClientRect(), b = cols[i].getBoundingClientRect();
          return Math.max(Math.abs(a.left - b.left), Math.abs(a.right - b.right));
        });
        """
    )
    assert len(drift) == 7 and max(drift) <= 1, f"header/column drift per day (px): {drift}"
    # The zone the times are in is named.
    zone = C.a.execute_script("return Intl.DateTimeFormat().resolvedOptions().timeZone")
    text_in(C.a, "#cal-zone", zone)
    # A failed load says so where the week should be, with Retry (it used to look like an
    # empty week, with a toast for six seconds).
    C.a.execute_script(
        "window.__realFetch = window.fetch;"
        "window.fetch = (u, o) => String(u).includes('/api/agenda')"
        " ? Promise.reject(new TypeError('Failed to fetch')) : window.__realFetch(u, o);"
    )
    try:
        clickable(C.a, "#cal-next").click()
        error = visible(C.a, "#calendar #cal-error")
        assert "could not be loaded" in error.text, error.text
        assert not C.a.find_elements(By.CSS_SELECTOR, "#calendar .day-col"), "an empty week was drawn"
    finally:
        C.a.execute_script("window.fetch = window.__realFetch")
    clickable(C.a, "#cal-retry").click()
    visible(C.a, "#calendar .week .day-col")
    gone(C.a, "#cal-error")
    clickable(C.a, "#cal-prev").click()
    visible(C.a, f"#calendar .day-col[data-date='{C.day.date().isoformat()}']")
    # A new page starts at its top.
    C.a.set_window_size(1280, 520)
    try:
        go(C.a, "#/cluster")
        wait(C.a, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#slots .slot-card")) == 7, what="7 slots")
        C.a.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
        wait(C.a, lambda x: x.execute_script("return window.scrollY") > 100, what="the cluster page scrolled down")
        go(C.a, f"#/week/{C.day.date().isoformat()}")
        visible(C.a, "#calendar .week .day-col")
        assert C.a.execute_script("return window.scrollY") == 0, "the week kept the cluster page's scroll offset"
    finally:
        C.a.set_window_size(1280, 860)


def step_profile_and_password_change():
    go(C.a, "#/profile")
    form = visible(C.a, "#profile-name-form")
    type_into(form.find_element(By.NAME, "display_name"), "Alice M. Martin")
    submit(form)
    text_in(C.a, "#profile-name-form .alert", "Saved")
    text_in(C.a, "#whoami", "Alice M. Martin")
    form = C.a.find_element(By.ID, "profile-login-form")
    type_into(form.find_element(By.NAME, "email"), "alice.martin@example.org")
    type_into(form.find_element(By.NAME, "current_password"), "wrong password")
    submit(form)
    text_in(C.a, "#profile-login-form .alert", "current password is wrong")
    type_into(form.find_element(By.NAME, "current_password"), PASSWORD)
    submit(form)
    text_in(C.a, "#profile-login-form .alert", "Saved")
    # Alice is also signed in on another device (slot 4), idle on her calendar: when the
    # password changes, the server closes that device's live socket (token_revoked) and
    # the page signs out by itself, without any request of its own.
    other = new_browser("alice-other")
    try:
        other.get(ui_url(SLOT_B))
        form = visible(other, "#login-form")
        type_into(form.find_element(By.NAME, "login"), "alice")
        type_into(form.find_element(By.NAME, "password"), PASSWORD)
        submit(form)
        visible(other, "#calendar")
        visible(other, "#live-dot.up")
        change_password_and_check(other)
    finally:
        other.quit()
        shutil.rmtree(other.agenda_profile, ignore_errors=True)
    shot(C.a, "10-profile")
    visible(C.a, "#live-dot.up")


def change_password_and_check(other):
    old_token = token_of(C.a)
    form = C.a.find_element(By.ID, "password-form")
    type_into(form.find_element(By.NAME, "current_password"), PASSWORD)
    type_into(form.find_element(By.NAME, "new_password"), PASSWORD + "!")
    type_into(form.find_element(By.NAME, "confirm_password"), PASSWORD + "!")
    submit(form)
    text_in(C.a, "#password-form .alert", "Password changed")
    assert token_of(C.a) != old_token
    s, _, _ = api(SLOT_A, "GET", "/api/me", old_token)
    assert s == 401, s
    # This tab goes on with its new token; the other device is signed out with a reason.
    alert = visible(other, "#login-form .alert")
    assert "password was changed" in alert.text and "sign in again" in alert.text.lower(), alert.text
    assert other.execute_script("return localStorage.getItem('agenda.session')") is None
    shot(other, "10b-signed-out-elsewhere", settle=False)


def step_phone_sized_screens():
    C.b.set_window_size(375, 812)
    go(C.b, "#/groups")
    visible(C.b, "#group-list .group-card")
    width = C.b.execute_script("return document.documentElement.scrollWidth")
    assert width <= 376, f"horizontal overflow at 375 px on the groups page: {width}"
    go(C.b, f"#/week/{C.day.date().isoformat()}")
    visible(C.b, "#calendar .agenda-list")
    wait(C.b, lambda x: x.find_elements(By.CSS_SELECTOR, "#calendar .agenda-list .event"), what="list events")
    width = C.b.execute_script("return document.documentElement.scrollWidth")
    assert width <= 376, f"horizontal overflow at 375 px: {width}"
    shot(C.b, "13-phone-week")
    clickable(C.b, "#view-month").click()
    visible(C.b, "#calendar .month")
    shot(C.b, "14-phone-month")
    # A tap on a day (the cells show dots on a phone) opens that day, not the editor.
    day = C.day.date().isoformat()
    cell = visible(C.b, f"#calendar .month-cell[data-date='{day}']")
    C.b.execute_script("arguments[0].click()", cell)
    wait(C.b, lambda x: x.current_url.endswith(f"#/week/{day}"), what="the tapped day's week")
    assert not C.b.find_elements(By.CSS_SELECTOR, "dialog[open]"), "the tap opened the editor"
    section = visible(C.b, f"#calendar .agenda-list .list-day[data-date='{day}']")
    top = C.b.execute_script("return arguments[0].getBoundingClientRect().top", section)
    height = C.b.execute_script("return window.innerHeight")
    assert 0 <= top < height - 60, f"the tapped day is not on screen: top {top} of {height}"
    clickable(C.b, "#bell").click()
    visible(C.b, "#notif-panel")
    shot(C.b, "15-phone-notifications")
    clickable(C.b, "#notif-close").click()
    go(C.b, "#/cluster")
    visible(C.b, "#slots .slot-card")
    width = C.b.execute_script("return document.documentElement.scrollWidth")
    assert width <= 376, f"horizontal overflow at 375 px on the cluster page: {width}"
    C.b.set_window_size(1280, 860)


def leader_shown(d):
    el = d.find_elements(By.CSS_SELECTOR, "#cluster-leader[data-slot]")
    return el[0].get_attribute("data-slot") if el else ""


def step_cluster_page_shows_a_new_leader_after_the_leader_store_stops():
    go(C.a, "#/cluster")
    wait(C.a, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#slots .slot-card[data-role]")) == 7, what="7 slots")
    old = wait(C.a, leader_shown, what="a leader")
    wait(
        C.a,
        lambda x: len(x.find_elements(By.CSS_SELECTOR, "#slots .slot-card[data-role='follower']")) == 6,
        what="6 followers",
    )
    shot(C.a, "11-cluster")
    pid = store_pid(old)
    assert pid, f"no store process for {old} under {DATA_DIR}"
    # Freeze the leader's store (SIGSTOP): it stops answering, like a hung or cut-off
    # node, and the launcher does not restart it (a killed store restarted within a
    # second can resume as leader before the others' election timeout).
    os.kill(pid, signal.SIGSTOP)
    C.stopped = pid
    try:
        t0 = time.monotonic()
        def new_leader(x):
            s = leader_shown(x)
            card = f"#slots .slot-card[data-slot='{s}'][data-role='leader']"
            return s if s and s != old and x.find_elements(By.CSS_SELECTOR, card) else False

        new = wait(C.a, new_leader, 90, "a new leader")
        print(f"    leader {old} stopped; the cluster page showed {new} after {time.monotonic() - t0:.1f}s", flush=True)
        visible(C.a, f"#slots .slot-card[data-slot='{new}'][data-role='leader']")
        wait(C.a, lambda x: x.find_elements(By.CSS_SELECTOR, "#slots .slot-card[data-role='down']"), 30, "the stopped store shown down")
        shot(C.a, "12-cluster-failover")
        # Bob (another slot) sees the same leader on his cluster page.
        go(C.b, "#/cluster")
        wait(C.b, lambda x: leader_shown(x) == new, 30, "Bob sees the new leader")
        # The agenda keeps working with a store down.
        go(C.a, f"#/week/{C.day.date().isoformat()}")
        event_by_title(C.a, "Sprint planning")
    finally:
        os.kill(pid, signal.SIGCONT)
        C.stopped = None
    # The old leader comes back as a follower of the new one.
    go(C.a, "#/cluster")
    wait(
        C.a,
        lambda x: x.find_elements(By.CSS_SELECTOR, f"#slots .slot-card[data-slot='{old}'][data-role='follower']"),
        60,
        f"{old} back as a follower",
    )
    shot(C.a, "12b-cluster-recovered")


def step_no_script_errors_or_csp_violations():
    errors = []
    for d in (C.a, C.b):
        errors += [f"{d.agenda_name}: {m}" for m in console_errors(d)]
    assert not errors, "\n".join(errors)


def step_log_out():
    clickable(C.a, "#logout").click()
    visible(C.a, "#login-form")
    assert C.a.execute_script("return localStorage.getItem('agenda.session')") is None
    C.a.refresh()
    visible(C.a, "#login-form")


STEPS = [
    step_ui_is_served_embedded_with_strict_headers,
    step_two_users_register_on_different_slots,
    step_registration_errors_are_readable,
    step_session_survives_reload_and_bad_token_returns_to_login,
    step_personal_appointments_and_a_conflict_named_in_words,
    step_edit_with_a_stale_version_explains_and_reloads,
    step_delete_an_appointment,
    step_bob_is_invited_sees_it_live_and_joins,
    step_group_invitation_arrives_live_and_is_accepted,
    step_a_moved_meeting_stays_in_view_and_is_answered_from_the_notice,
    step_another_window_of_the_same_user_follows_changes,
    step_a_second_invitation_is_declined_and_a_third_withdrawn,
    step_month_view_and_navigation,
    step_the_calendar_follows_every_page_of_the_agenda,
    step_the_editor_explains_each_privacy_level,
    step_group_agenda_respects_privacy,
    step_every_title_shows_in_the_week_view,
    step_typing_a_start_date_keeps_the_end,
    step_a_hierarchical_booking_says_booked_not_invited,
    step_day_and_list_views,
    step_unsaved_changes_are_not_lost_by_escape,
    step_drag_to_move_resize_and_create_with_a_keyboard_alternative,
    step_week_columns_zone_and_scroll_position,
    step_profile_and_password_change,
    step_phone_sized_screens,
    step_cluster_page_shows_a_new_leader_after_the_leader_store_stops,
    step_no_script_errors_or_csp_violations,
    step_log_out,
]


def main():
    os.makedirs(SHOTS, exist_ok=True)
    os.makedirs(os.path.join(REPO, "docs", "screenshots"), exist_ok=True)
    passed = failed = 0
    try:
        for step in STEPS:
            name = step.__name__.removeprefix("step_")
            t0 = time.monotonic()
            try:
                step()
                passed += 1
                print(f"PASS {name} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - report every failure and go on
                failed += 1
                kind = "timeout" if isinstance(e, TimeoutException) else type(e).__name__
                print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {kind}: {e}", flush=True)
                traceback.print_exc()
                for d in (C.a, C.b):
                    if d is not None:
                        try:
                            shot(d, f"failure-{name}-{d.agenda_name}", settle=False)
                            collect_console(d)
                            for entry in d.agenda_console[-15:]:
                                print(f"    [{d.agenda_name} console] {entry.get('level')}: {entry.get('message')}")
                        except Exception:  # noqa: BLE001
                            pass
                if C.a is None or C.b is None:
                    print("    (no browsers: skipping the rest)")
                    failed += len(STEPS) - passed - failed
                    break
    finally:
        if C.stopped:
            os.kill(C.stopped, signal.SIGCONT)
        for d in (C.a, C.b):
            if d is not None:
                try:
                    d.quit()
                except Exception:  # noqa: BLE001
                    pass
                shutil.rmtree(d.agenda_profile, ignore_errors=True)
    print(f"screenshots: {SHOTS}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
