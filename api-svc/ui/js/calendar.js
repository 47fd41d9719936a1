// Day, week, month and list views of the caller's agenda (`GET /api/agenda`, every page
// of the range), with prev/next/today, pending invitations shown (set apart) unless
// switched off, click-to-create and click-to-open, and on the time grid drag to create,
// move and resize (drag.js). On a narrow screen the week becomes a
// day-by-day list. The view refreshes itself when a notification (or another tab) says an
// appointment changed.

import * as api from './api.js';
import { h, replace } from './dom.js';
import { defaultStart, myParticipation, openEditor, statusLabel } from './editor.js';
import { makeCreatable, makeMovable } from './drag.js';
import {
  addDays,
  addMonths,
  dateKey,
  fmtDay,
  fmtLongDay,
  fmtMonth,
  fmtHour,
  fmtTime,
  fmtTimeRange,
  fmtWeekday,
  iso,
  minutesInto,
  parseDateKey,
  sameDay,
  startOfDay,
  startOfMonth,
  startOfWeek,
} from './time.js';

const HOUR_PX = 48;
/** Days the list view shows from its first day. */
const LIST_DAYS = 30;
/** The views, in the order of the switcher. */
const VIEWS = { day: 'Day', week: 'Week', month: 'Month', list: 'List' };
/** Days that prev/next move by (the month view moves by a month). */
const STEP_DAYS = { day: 1, week: 7, list: LIST_DAYS };
/** What prev/next move by, in words. */
const PERIOD = { day: 'day', week: 'week', month: 'month', list: `${LIST_DAYS} days` };
const PENDING_KEY = 'agenda.showPending';

function classesFor(a) {
  const mine = myParticipation(a);
  return [
    'event',
    a.group_id ? 'group' : 'personal',
    a.status === 'tentative' && 'tentative',
    mine?.status === 'pending' && 'pending',
    a.masked && 'masked',
  ];
}

function eventData(a) {
  return { id: a.id, status: a.status, mine: myParticipation(a)?.status || '', version: String(a.version) };
}

/** The width below which the calendar shows lists and dots (app.css, 700px). */
const PHONE = window.matchMedia('(max-width: 700px)');
/** The day a phone user tapped in the month view, for the week view to scroll to. */
const FOCUS_DAY = 'agenda.focusDay';

/** The time zone the calendar shows, e.g. `Europe/Paris (UTC+1)`. */
function zoneName() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  const offset = new Intl.DateTimeFormat([], { timeZoneName: 'shortOffset' })
    .formatToParts(new Date())
    .find((p) => p.type === 'timeZoneName');
  return offset && offset.value !== zone ? `${zone} (${offset.value})` : zone;
}

/** Lay out one day's events in side-by-side lanes where they overlap. */
function lanes(events) {
  const sorted = [...events].sort((x, y) => x.s - y.s || y.e - x.e);
  const out = [];
  let cluster = [];
  let clusterEnd = -1;
  const flush = () => {
    const laneEnds = [];
    for (const ev of cluster) {
      let lane = laneEnds.findIndex((end) => end <= ev.s);
      if (lane === -1) {
        lane = laneEnds.length;
        laneEnds.push(ev.e);
      } else laneEnds[lane] = ev.e;
      ev.lane = lane;
    }
    for (const ev of cluster) ev.lanes = laneEnds.length;
    out.push(...cluster);
    cluster = [];
  };
  for (const ev of sorted) {
    if (cluster.length && ev.s >= clusterEnd) flush();
    cluster.push(ev);
    clusterEnd = Math.max(clusterEnd, ev.e);
  }
  if (cluster.length) flush();
  return out;
}

export function calendarView(root, { mode, date }) {
  const focusDay = sessionStorage.getItem(FOCUS_DAY);
  sessionStorage.removeItem(FOCUS_DAY);
  const anchor = parseDateKey(date) || startOfDay(new Date());
  // Invitations (and meetings that moved, which ask again) are shown unless the person
  // chose to hide them: a meeting must not vanish from the grid because it awaits an answer.
  let showPending = localStorage.getItem(PENDING_KEY) !== '0';
  let appointments = [];
  let firstRender = true;
  let disposed = false;

  const range = (() => {
    switch (mode) {
      case 'month': {
        const first = startOfWeek(startOfMonth(anchor));
        return { start: first, end: addDays(first, 42) };
      }
      case 'day':
        return { start: startOfDay(anchor), end: addDays(startOfDay(anchor), 1) };
      case 'list':
        return { start: startOfDay(anchor), end: addDays(startOfDay(anchor), LIST_DAYS) };
      default: {
        const s = startOfWeek(anchor);
        return { start: s, end: addDays(s, 7) };
      }
    }
  })();

  const go = (d) => {
    location.hash = `#/${mode}/${dateKey(d)}`;
  };
  const step = (n) => (mode === 'month' ? addMonths(anchor, n) : addDays(anchor, n * STEP_DAYS[mode]));
  const prev = () => go(step(-1));
  const next = () => go(step(1));

  const title = (() => {
    const e = addDays(range.end, -1);
    switch (mode) {
      case 'month':
        return fmtMonth(anchor);
      case 'day':
        return fmtLongDay(anchor);
      default:
        return range.start.getMonth() === e.getMonth() && range.start.getFullYear() === e.getFullYear()
          ? `${range.start.getDate()} – ${e.getDate()} ${fmtMonth(e)}`
          : `${fmtDay(range.start)} – ${fmtDay(e)} ${e.getFullYear()}`;
    }
  })();

  const pendingToggle = h('input', { type: 'checkbox', id: 'show-pending', checked: showPending });
  pendingToggle.checked = showPending;
  pendingToggle.addEventListener('change', () => {
    showPending = pendingToggle.checked;
    localStorage.setItem(PENDING_KEY, showPending ? '1' : '0');
    load();
  });

  const status = h('p', { class: 'cal-status muted', role: 'status' });
  const body = h('div', { class: ['cal-body', mode], id: 'calendar', dataset: { mode } });

  const toolbar = h(
    'div',
    { class: 'cal-toolbar' },
    h(
      'div',
      { class: 'cal-nav' },
      h('button', { type: 'button', class: 'button small', id: 'cal-today', onclick: () => go(new Date()) }, 'Today'),
      h('button', { type: 'button', class: 'icon-button', id: 'cal-prev', 'aria-label': `Previous ${PERIOD[mode]}`, onclick: prev }, '‹'),
      h('button', { type: 'button', class: 'icon-button', id: 'cal-next', 'aria-label': `Next ${PERIOD[mode]}`, onclick: next }, '›'),
      h('h1', { class: 'cal-title', id: 'cal-title' }, title),
      h('span', { class: 'cal-zone', id: 'cal-zone', title: 'Times are shown in this time zone (your device’s)' }, zoneName()),
    ),
    h(
      'div',
      { class: 'cal-tools' },
      h('label', { class: 'switch', for: 'show-pending' }, pendingToggle, h('span', {}, 'Show invitations')),
      h(
        'div',
        { class: 'segmented', role: 'group', 'aria-label': 'View' },
        Object.entries(VIEWS).map(([m, label]) =>
          h('a', { href: `#/${m}/${dateKey(anchor)}`, class: mode === m && 'active', id: `view-${m}`, 'aria-current': mode === m ? 'page' : null }, label),
        ),
      ),
      h(
        'button',
        { type: 'button', class: 'button primary', id: 'new-appointment', onclick: () => create(defaultStart(sameDay(anchor, new Date()) ? null : anchor)) },
        '+ New',
      ),
    ),
  );

  replace(root, h('section', { class: 'calendar-page' }, toolbar, status, body));

  function create(start, end) {
    openEditor({ start, end, onChange: load });
  }
  function open(a) {
    openEditor({ appointment: a, onChange: load });
  }

  function eventButton(a, extra = {}, compact = false) {
    const label = statusLabel(a);
    return h(
      'button',
      {
        type: 'button',
        class: classesFor(a),
        dataset: eventData(a),
        title: `${a.title}\n${fmtTimeRange(a.start_time, a.end_time)}${label ? `\n${label}` : ''}`,
        onclick: (e) => {
          e.stopPropagation();
          // The release of a drag is not a click.
          if (e.currentTarget.dataset.dragged) {
            delete e.currentTarget.dataset.dragged;
            return;
          }
          open(a);
        },
        ...extra,
      },
      h('span', { class: 'ev-title' }, a.title),
      h('span', { class: 'ev-time' }, compact ? fmtTime(a.start_time) : fmtTimeRange(a.start_time, a.end_time)),
      label ? h('span', { class: 'ev-status' }, label) : null,
    );
  }

  /** Position an event `s`–`e` minutes into its column's day. */
  function place(btn, s, e) {
    const height = Math.max(((e - s) / 60) * HOUR_PX - 2, 20);
    btn.style.setProperty('top', `${(s / 60) * HOUR_PX}px`);
    btn.style.setProperty('height', `${height}px`);
    btn.classList.toggle('short', height < 40);
  }

  /** The time grid of `range`: seven columns for a week, one for a day. */
  function renderWeek() {
    const days = [...Array(mode === 'day' ? 1 : 7)].map((_, i) => addDays(range.start, i));
    const today = new Date();
    const head = h(
      'div',
      { class: 'week-head' },
      h('div', { class: 'gutter' }),
      days.map((d) =>
        h(
          'a',
          { class: ['day-head', sameDay(d, today) && 'today'], href: `#/week/${dateKey(d)}` },
          h('span', { class: 'dow' }, fmtWeekday(d)),
          h('span', { class: 'dom' }, String(d.getDate())),
        ),
      ),
    );
    const hours = h(
      'div',
      { class: 'gutter hours' },
      [...Array(24)].map((_, i) => h('div', { class: 'hour-label' }, i === 0 ? '' : fmtHour(new Date(2000, 0, 1, i)))),
    );
    const cols = days.map((d) => {
      const col = h('div', { class: ['day-col', sameDay(d, today) && 'today'], dataset: { date: dateKey(d) } });
      makeCreatable(col, d, { hourPx: HOUR_PX, create });
      col.addEventListener('click', (e) => {
        if (col.dataset.dragged) {
          delete col.dataset.dragged;
          return;
        }
        const rect = col.getBoundingClientRect();
        const minutes = Math.floor(((e.clientY - rect.top) / HOUR_PX) * 2) * 30;
        const s = new Date(d);
        s.setMinutes(Math.max(0, Math.min(23 * 60 + 30, minutes)));
        create(s, new Date(s.getTime() + 3600000));
      });
      const dayEvents = appointments
        .map((a) => ({ a, s: minutesInto(d, a.start_time), e: minutesInto(d, a.end_time) }))
        .filter((x) => new Date(x.a.start_time) < addDays(d, 1) && new Date(x.a.end_time) > d && x.e > x.s);
      for (const ev of lanes(dayEvents)) {
        const btn = eventButton(ev.a);
        place(btn, ev.s, ev.e);
        btn.style.setProperty('left', `calc(${(100 / ev.lanes) * ev.lane}% + 2px)`);
        btn.style.setProperty('width', `calc(${100 / ev.lanes}% - 4px)`);
        // Only where it starts: a part continued from the day before does not drag.
        if (new Date(ev.a.start_time) >= d) {
          makeMovable(btn, ev.a, d, {
            hourPx: HOUR_PX,
            place: (b, s, e) => {
              const day = startOfDay(s);
              place(b, minutesInto(day, s), minutesInto(day, e));
            },
            onDone: load,
          });
        }
        col.append(btn);
      }
      if (sameDay(d, today)) {
        const now = h('div', { class: 'now-line', 'aria-hidden': 'true' });
        now.style.setProperty('top', `${(minutesInto(d, today) / 60) * HOUR_PX}px`);
        col.append(now);
      }
      return col;
    });
    const grid = h('div', { class: 'week-grid' }, hours, cols);
    const scroller = h('div', { class: 'week-scroll', id: 'week-scroll' }, grid);

    // The narrow-screen list.
    const list = h(
      'div',
      { class: 'agenda-list' },
      days.map((d) => {
        const items = appointments.filter((a) => new Date(a.start_time) < addDays(d, 1) && new Date(a.end_time) > d);
        return h(
          'section',
          { class: ['list-day', sameDay(d, today) && 'today'], dataset: { date: dateKey(d) } },
          h('h2', {}, fmtLongDay(d)),
          items.length
            ? h('ul', {}, items.map((a) => h('li', {}, eventButton(a, { class: [...classesFor(a), 'list-event'] }))))
            : h('p', { class: 'muted empty-day' }, 'Nothing planned.'),
        );
      }),
    );
    const kept = body.querySelector('.week-scroll')?.scrollTop;
    const week = h('div', { class: 'week' }, head, scroller);
    week.style.setProperty('--days', String(days.length));
    replace(body, week, list);
    scroller.scrollTop = firstRender || kept === undefined ? 7.5 * HOUR_PX : kept;
    // On a phone (the list), the week opened by a tap on a day of the month view starts
    // at that day.
    if (firstRender && PHONE.matches && focusDay === dateKey(anchor)) {
      list.querySelector(`.list-day[data-date="${focusDay}"]`)?.scrollIntoView({ block: 'start' });
    }
    firstRender = false;
  }

  function renderMonth() {
    const today = new Date();
    const days = [...Array(42)].map((_, i) => addDays(range.start, i));
    const names = days.slice(0, 7).map((d) => h('div', { class: 'month-dow' }, fmtWeekday(d)));
    const cells = days.map((d) => {
      const items = appointments.filter((a) => new Date(a.start_time) < addDays(d, 1) && new Date(a.end_time) > d);
      const shown = items.slice(0, 3);
      const cell = h(
        'div',
        {
          class: ['month-cell', d.getMonth() !== anchor.getMonth() && 'other', sameDay(d, today) && 'today'],
          dataset: { date: dateKey(d) },
        },
        h('a', { class: 'month-date', href: `#/week/${dateKey(d)}`, 'aria-label': `Week of ${fmtLongDay(d)}` }, String(d.getDate())),
        h(
          'div',
          { class: 'month-events' },
          shown.map((a) => {
            const b = eventButton(a, {}, true);
            b.classList.add('chip');
            return b;
          }),
          items.length > shown.length
            ? h('a', { class: 'more', href: `#/week/${dateKey(d)}` }, `+${items.length - shown.length} more`)
            : null,
        ),
        items.length ? h('span', { class: 'dots', 'aria-hidden': 'true' }, items.slice(0, 4).map(() => h('i'))) : null,
      );
      cell.addEventListener('click', (e) => {
        if (e.target.closest('a, button')) return;
        // On a phone the cell shows dots, not the appointments: a tap opens that day.
        if (PHONE.matches) {
          sessionStorage.setItem(FOCUS_DAY, dateKey(d));
          location.hash = `#/week/${dateKey(d)}`;
        } else create(defaultStart(d));
      });
      return cell;
    });
    replace(body, h('div', { class: 'month' }, h('div', { class: 'month-names' }, names), h('div', { class: 'month-grid' }, cells)));
  }

  /** The list view: each day of the range that has something, in order. */
  function renderList() {
    const today = new Date();
    const days = [...Array(LIST_DAYS)].map((_, i) => addDays(range.start, i));
    const sections = days
      .map((d) => {
        const items = appointments
          .filter((a) => new Date(a.start_time) < addDays(d, 1) && new Date(a.end_time) > d)
          .sort((x, y) => new Date(x.start_time) - new Date(y.start_time));
        if (!items.length) return null;
        return h(
          'section',
          { class: ['list-day', sameDay(d, today) && 'today'], dataset: { date: dateKey(d) } },
          h('h2', {}, fmtLongDay(d)),
          h('ul', {}, items.map((a) => h('li', {}, eventButton(a, { class: [...classesFor(a), 'list-event'] })))),
        );
      })
      .filter(Boolean);
    replace(
      body,
      h(
        'div',
        { class: 'agenda-list list-view' },
        sections.length
          ? sections
          : h('p', { class: 'muted empty-day', id: 'list-empty' }, `Nothing planned from ${fmtLongDay(range.start)} to ${fmtLongDay(addDays(range.end, -1))}.`),
      ),
    );
  }

  function render() {
    if (mode === 'month') renderMonth();
    else if (mode === 'list') renderList();
    else renderWeek();
  }

  let loading = null;
  async function load() {
    if (disposed) return;
    const seq = (loading = Symbol('load'));
    status.textContent = 'Loading…';
    try {
      // A page holds at most 500 items (or ~4 MiB): follow `next_cursor` to the end, so
      // nothing in the range silently goes missing.
      const d = await api.getAllPages(
        '/api/agenda',
        { start: iso(range.start), end: iso(range.end), include: showPending ? 'pending' : '' },
        'appointments',
      );
      if (seq !== loading || disposed) return;
      appointments = d.items;
      const pending = appointments.filter((a) => myParticipation(a)?.status === 'pending').length;
      status.textContent =
        `${appointments.length} appointment${appointments.length === 1 ? '' : 's'}` +
        (showPending ? ` · ${pending} invitation${pending === 1 ? '' : 's'} awaiting your answer` : '') +
        (d.complete ? '' : ' · too many to show them all; some are missing');
      body.dataset.loaded = String(Date.now());
      body.dataset.pages = String(d.pages);
      render();
    } catch (err) {
      if (seq !== loading || disposed) return;
      // Said where the agenda should be, with a way to try again: an empty grid would
      // read as an empty week.
      status.textContent = 'Not loaded';
      delete body.dataset.loaded;
      replace(
        body,
        h(
          'div',
          { class: 'alert error cal-error', id: 'cal-error', role: 'alert' },
          h('p', {}, `Your agenda could not be loaded: ${api.message(err)}`),
          h('button', { type: 'button', class: 'button small', id: 'cal-retry', onclick: () => load() }, 'Retry'),
        ),
      );
    }
  }

  // Refresh when a notification says something changed (debounced).
  let refreshTimer;
  const onChanged = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(load, 150);
  };
  document.addEventListener('agenda:changed', onChanged);
  const onKey = (e) => {
    if (e.target.closest('input, textarea, select, dialog')) return;
    if (e.key === 'ArrowLeft' && e.altKey) prev();
    if (e.key === 'ArrowRight' && e.altKey) next();
  };
  document.addEventListener('keydown', onKey);
  const onVisible = () => {
    if (document.visibilityState === 'visible') onChanged();
  };
  document.addEventListener('visibilitychange', onVisible);
  // Keep the "now" line moving.
  const tick = setInterval(() => {
    if (mode === 'week' || mode === 'day') render();
  }, 60000);

  render();
  load();

  return () => {
    disposed = true;
    clearTimeout(refreshTimer);
    clearInterval(tick);
    document.removeEventListener('agenda:changed', onChanged);
    document.removeEventListener('keydown', onKey);
    document.removeEventListener('visibilitychange', onVisible);
  };
}
