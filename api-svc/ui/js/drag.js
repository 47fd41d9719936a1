// Direct editing on the time grid (day and week views): drag an empty stretch of a day to
// create an appointment there, drag an appointment to move it (to another time or day),
// drag its bottom edge to change its end. The keyboard alternative: on a focused
// appointment, Alt+↑/↓ moves it by 15 minutes and Alt+Shift+↑/↓ changes its end; the
// change is saved once the keys rest. Only the organiser's own appointments move; a
// clash (409) or a change made elsewhere (412) is explained and the grid reloads.

import * as api from './api.js';
import * as session from './session.js';
import { h, toast } from './dom.js';
import { explainConflict } from './editor.js';
import { addDays, fmtRange, fmtTimeRange, iso, parseDateKey, startOfDay } from './time.js';

/** Minutes a drag or a key press snaps to. */
export const SNAP_MIN = 15;
/** Pointer travel (px) below which a press is a click, not a drag. */
const SLOP_PX = 4;
/** How long the keys rest before a keyboard change is saved, ms. */
const KEY_SETTLE_MS = 700;

const MIN_MS = 60000;

/** Whether the signed-in person may move `a` (their own, visible, not cancelled). */
export function movable(a) {
  return a.owner_id === session.user()?.id && !a.masked && a.status !== 'cancelled';
}

/** The day column under a point, if any. */
function columnAt(x, y) {
  return document.elementsFromPoint(x, y).find((el) => el.classList?.contains('day-col')) || null;
}

/** Minutes into the column's day at `clientY`, snapped, within [0, 1440]. */
function minutesAt(col, clientY, hourPx) {
  const raw = ((clientY - col.getBoundingClientRect().top) / hourPx) * 60;
  return Math.max(0, Math.min(1440, Math.round(raw / SNAP_MIN) * SNAP_MIN));
}

/** `day` (a Date at local midnight) plus `minutes`. */
function at(day, minutes) {
  const d = new Date(day);
  d.setMinutes(minutes);
  return d;
}

/** Save a new time for `a`; `onDone()` reloads the grid whatever happened. */
async function save(a, start, end, onDone) {
  try {
    await api.patch(
      `/api/appointments/${a.id}`,
      { start_time: iso(start), end_time: iso(end) },
      { headers: { 'If-Match': String(a.version) } },
    );
    const asked = a.group_id ? ' Everyone who had to accept is asked again.' : '';
    toast(`Moved “${a.title}” to ${fmtRange(start, end)}.${asked}`, 'success');
  } catch (err) {
    if (err.status === 409) {
      toast(await explainConflict(err.problem.conflicting_ids, `“${a.title}” cannot go there: it would overlap with`), 'error', 9000);
    } else if (err.status === 412) {
      toast(`“${a.title}” was changed elsewhere in the meantime; the latest version is shown.`, 'error', 9000);
    } else {
      toast(api.message(err), 'error');
    }
  } finally {
    onDone();
  }
}

/**
 * Make `btn` (the button of appointment `a` on the grid, in the column of `day`) movable
 * and resizable by pointer and keyboard. `place(btn, start, end)` positions it;
 * `onDone()` reloads the grid after a save.
 */
export function makeMovable(btn, a, day, { hourPx, place, onDone }) {
  if (!movable(a)) return;
  btn.classList.add('movable');
  const handle = h('span', { class: 'resize-handle', 'aria-hidden': 'true', title: 'Drag to change the end' });
  btn.append(handle);
  btn.setAttribute('aria-keyshortcuts', 'Alt+ArrowUp Alt+ArrowDown Alt+Shift+ArrowUp Alt+Shift+ArrowDown');
  const s0 = new Date(a.start_time);
  const e0 = new Date(a.end_time);
  const duration = e0 - s0;
  const show = (start, end) => {
    place(btn, start, end);
    const time = btn.querySelector('.ev-time');
    if (time) time.textContent = fmtTimeRange(start, end);
  };

  btn.addEventListener('pointerdown', (down) => {
    if (down.button !== 0) return;
    const resize = down.target === handle;
    let moved = false;
    let start = s0;
    let end = e0;
    btn.setPointerCapture(down.pointerId);
    const move = (ev) => {
      const dx = ev.clientX - down.clientX;
      const dy = ev.clientY - down.clientY;
      if (!moved && Math.abs(dx) < SLOP_PX && Math.abs(dy) < SLOP_PX) return;
      moved = true;
      btn.classList.add('dragging');
      const deltaMin = Math.round(((dy / hourPx) * 60) / SNAP_MIN) * SNAP_MIN;
      if (resize) {
        end = new Date(Math.max(s0.getTime() + SNAP_MIN * MIN_MS, e0.getTime() + deltaMin * MIN_MS));
      } else {
        // Whole days by the column under the pointer, minutes by the vertical travel.
        const col = columnAt(ev.clientX, ev.clientY);
        const target = col ? parseDateKey(col.dataset.date) : null;
        const days = target ? Math.round((target - startOfDay(day)) / 86_400_000) : 0;
        start = new Date(addDays(s0, days).getTime() + deltaMin * MIN_MS);
        end = new Date(start.getTime() + duration);
        // Shown over the target column (moving the element would lose the pointer).
        const home = btn.parentElement;
        const shift = col && home ? col.getBoundingClientRect().left - home.getBoundingClientRect().left : 0;
        btn.style.setProperty('transform', `translateX(${shift}px)`);
      }
      show(start, end);
    };
    const finish = (ev) => {
      btn.removeEventListener('pointermove', move);
      btn.removeEventListener('pointerup', finish);
      btn.removeEventListener('pointercancel', finish);
      btn.classList.remove('dragging');
      if (!moved) return;
      // The click that follows the release must not open the editor.
      btn.dataset.dragged = '1';
      if (ev.type === 'pointercancel' || (start.getTime() === s0.getTime() && end.getTime() === e0.getTime())) onDone();
      else save(a, start, end, onDone);
    };
    btn.addEventListener('pointermove', move);
    btn.addEventListener('pointerup', finish);
    btn.addEventListener('pointercancel', finish);
  });

  // The keyboard alternative.
  let pending = { start: s0, end: e0 };
  let timer = null;
  btn.addEventListener('keydown', (e) => {
    if (!e.altKey || (e.key !== 'ArrowUp' && e.key !== 'ArrowDown')) return;
    e.preventDefault();
    const step = (e.key === 'ArrowUp' ? -SNAP_MIN : SNAP_MIN) * MIN_MS;
    if (e.shiftKey) {
      pending = { start: pending.start, end: new Date(Math.max(pending.start.getTime() + SNAP_MIN * MIN_MS, pending.end.getTime() + step)) };
    } else {
      pending = { start: new Date(pending.start.getTime() + step), end: new Date(pending.end.getTime() + step) };
    }
    show(pending.start, pending.end);
    clearTimeout(timer);
    timer = setTimeout(() => save(a, pending.start, pending.end, onDone), KEY_SETTLE_MS);
  });
}

/**
 * Drag on an empty stretch of `col` (the column of `day`) to create an appointment there:
 * `create(start, end)` opens the editor with that time.
 */
export function makeCreatable(col, day, { hourPx, create }) {
  col.addEventListener('pointerdown', (down) => {
    if (down.button !== 0 || down.target !== col) return;
    const from = minutesAt(col, down.clientY, hourPx);
    let to = from;
    let ghost = null;
    col.setPointerCapture(down.pointerId);
    const move = (ev) => {
      if (!ghost && Math.abs(ev.clientY - down.clientY) < SLOP_PX) return;
      to = minutesAt(col, ev.clientY, hourPx);
      if (!ghost) {
        ghost = h('div', { class: 'event ghost', 'aria-hidden': 'true' });
        col.append(ghost);
      }
      const lo = Math.min(from, to);
      const hi = Math.max(from, to, lo + SNAP_MIN);
      ghost.style.setProperty('top', `${(lo / 60) * hourPx}px`);
      ghost.style.setProperty('height', `${((hi - lo) / 60) * hourPx}px`);
      ghost.textContent = fmtTimeRange(at(day, lo), at(day, hi));
    };
    const finish = (ev) => {
      col.removeEventListener('pointermove', move);
      col.removeEventListener('pointerup', finish);
      col.removeEventListener('pointercancel', finish);
      if (!ghost) return;
      ghost.remove();
      if (ev.type === 'pointercancel') return; // e.g. a touch that became a scroll
      col.dataset.dragged = '1';
      const lo = Math.min(from, to);
      const hi = Math.max(from, to, lo + SNAP_MIN);
      create(at(day, lo), at(day, hi));
    };
    col.addEventListener('pointermove', move);
    col.addEventListener('pointerup', finish);
    col.addEventListener('pointercancel', finish);
  });
}
