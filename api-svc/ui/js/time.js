// Date helpers. The API speaks RFC 3339 UTC; the UI shows and edits local time. Weeks
// start on Monday.

export const DAY_MS = 86_400_000;

export function startOfDay(d) {
  const x = new Date(d);
  x.setHours(0, 0, 0, 0);
  return x;
}

export function addDays(d, n) {
  const x = new Date(d);
  x.setDate(x.getDate() + n);
  return x;
}

export function addMonths(d, n) {
  const x = new Date(d);
  const day = x.getDate();
  x.setDate(1);
  x.setMonth(x.getMonth() + n);
  const last = new Date(x.getFullYear(), x.getMonth() + 1, 0).getDate();
  x.setDate(Math.min(day, last));
  return x;
}

/** Monday 00:00 of the week containing `d`. */
export function startOfWeek(d) {
  const x = startOfDay(d);
  const dow = (x.getDay() + 6) % 7;
  return addDays(x, -dow);
}

export function startOfMonth(d) {
  return new Date(d.getFullYear(), d.getMonth(), 1);
}

export function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

const pad = (n) => String(n).padStart(2, '0');

/** `YYYY-MM-DD` of the local date. The year always has four digits: while someone
 * types a year into a date field it passes through 2, 20 and 202, and an unpadded
 * `2-06-15` is not a value a date input takes (it would empty the field). */
export function dateKey(d) {
  return `${String(d.getFullYear()).padStart(4, '0')}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Parse `YYYY-MM-DD` as a local date; null when malformed. */
export function parseDateKey(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
  if (!m) return null;
  // Not `new Date(y, m, d)`: it reads the years 0 to 99 as 1900 to 1999.
  const d = new Date(2000, 0, 1);
  d.setFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Value for `<input type="datetime-local">`. */
export function toLocalInput(d) {
  return `${dateKey(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Date from a `datetime-local` value (local time); null when empty or invalid. */
export function fromLocalInput(s) {
  if (!s) return null;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** RFC 3339 UTC string for the API. */
export const iso = (d) => new Date(d).toISOString();

const TIME = new Intl.DateTimeFormat([], { hour: 'numeric', minute: '2-digit' });
export const fmtTime = (d) => TIME.format(new Date(d));
export const fmtHour = (d) => new Date(d).toLocaleTimeString([], { hour: 'numeric' });
/** "10:00 – 11:30 AM" (the locale decides how to share the parts). */
export function fmtTimeRange(s, e) {
  try {
    return TIME.formatRange(new Date(s), new Date(e));
  } catch {
    return `${fmtTime(s)} – ${fmtTime(e)}`;
  }
}
export const fmtDay = (d) => new Date(d).toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' });
export const fmtLongDay = (d) =>
  new Date(d).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
export const fmtMonth = (d) => new Date(d).toLocaleDateString([], { month: 'long', year: 'numeric' });
export const fmtWeekday = (d) => new Date(d).toLocaleDateString([], { weekday: 'short' });

/** "Tue 3 Jun, 10:00 – 11:00" (or with both days when they differ). */
export function fmtRange(start, end) {
  const s = new Date(start);
  const e = new Date(end);
  if (sameDay(s, e) || (e - s <= DAY_MS && e.getHours() === 0 && e.getMinutes() === 0 && sameDay(s, addDays(e, -1)))) {
    return `${fmtDay(s)}, ${fmtTimeRange(s, e)}`;
  }
  return `${fmtDay(s)} ${fmtTime(s)} – ${fmtDay(e)} ${fmtTime(e)}`;
}

/** "just now", "5 min ago", "3 h ago", or a date. */
export function fmtAgo(d) {
  const s = Math.round((Date.now() - new Date(d).getTime()) / 1000);
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return fmtDay(d);
}

/** Minutes since local midnight of `day`, clamped to [0, 1440]. */
export function minutesInto(day, t) {
  return Math.max(0, Math.min(1440, (new Date(t) - startOfDay(day)) / 60000));
}
