// The notification panel: list (newest first, "load older"), unread badge, mark read,
// accept/decline invitations, and live updates over the WebSocket. Appointment and group
// notifications also tell the open view to refresh (`agenda:changed`, `agenda:groups`).

import * as api from './api.js';
import * as session from './session.js';
import { Live } from './live.js';
import { h, replace, toast } from './dom.js';
import { fmtAgo, fmtRange } from './time.js';

const state = {
  items: [], // newest first
  ids: new Set(),
  unread: 0,
  next: null,
  myStatus: new Map(), // appointment id -> participant status
  live: null,
};

const el = (id) => document.getElementById(id);

const APPOINTMENT_KINDS = new Set([
  'invite',
  'invitation_accepted',
  'invitation_declined',
  'appointment_confirmed',
  'appointment_updated',
  'appointment_cancelled',
]);
const GROUP_KINDS = new Set(['group_member_added', 'group_member_removed', 'group_deleted']);

function quoted(p) {
  return p.title ? `“${p.title}”` : 'an appointment';
}

function when(p) {
  return typeof p.start_ms === 'number' && typeof p.end_ms === 'number' ? fmtRange(p.start_ms, p.end_ms) : '';
}

/** Words for one notification. */
export function describe(n) {
  const p = n.payload || {};
  const who = (id) => api.userName(id);
  switch (n.kind) {
    case 'invite':
      return {
        icon: '✉',
        text: `${who(p.owner_id)} invited you to ${quoted(p)}`,
        sub: [when(p), p.conflict ? 'it overlaps with something in your agenda' : ''].filter(Boolean).join(' · '),
      };
    case 'invitation_accepted':
      return { icon: '✓', text: `${who(p.user_id)} accepted ${quoted(p)}`, sub: when(p) };
    case 'invitation_declined':
      return { icon: '✕', text: `${who(p.user_id)} declined ${quoted(p)}`, sub: when(p) };
    case 'appointment_confirmed':
      return { icon: '★', text: `${quoted(p)} is confirmed: everyone accepted`, sub: when(p) };
    case 'appointment_updated':
      return { icon: '✎', text: `${quoted(p)} was changed`, sub: when(p) };
    case 'appointment_cancelled':
      return {
        icon: '⊘',
        text: `${quoted(p)} was cancelled${p.declined_by ? ` (${who(p.declined_by)} declined)` : ''}`,
        sub: when(p),
      };
    case 'group_member_added':
      return { icon: '+', text: `You were added to the group “${p.group_name || 'a group'}”`, sub: '' };
    case 'group_member_removed':
      return {
        icon: '−',
        text:
          p.user_id && p.user_id !== session.user()?.id
            ? `${who(p.user_id)} left the group “${p.group_name || 'a group'}”`
            : `You are no longer in the group “${p.group_name || 'a group'}”`,
        sub: '',
      };
    case 'group_deleted':
      return { icon: '✕', text: `The group “${p.group_name || 'a group'}” was deleted`, sub: '' };
    default:
      return { icon: '•', text: n.kind.replace(/_/g, ' '), sub: '' };
  }
}

function setUnread(n) {
  state.unread = Math.max(0, n);
  const badge = el('unread-badge');
  if (!badge) return;
  badge.textContent = state.unread > 99 ? '99+' : String(state.unread);
  badge.hidden = state.unread === 0;
  el('bell').setAttribute('aria-label', `Notifications, ${state.unread} unread`);
  document.title = state.unread ? `(${state.unread}) Agenda` : 'Agenda';
}

async function markRead(n) {
  if (n.read) return;
  try {
    const r = await api.post(`/api/notifications/${n.id}/read`);
    n.read = true;
    setUnread(r.unread);
    render();
  } catch (err) {
    toast(api.message(err), 'error');
  }
}

async function respond(n, accept) {
  const id = n.payload.appointment_id;
  try {
    const r = await api.post(`/api/appointments/${id}/${accept ? 'accept' : 'reject'}`);
    state.myStatus.set(id, r.participant.status);
    toast(accept ? `You accepted “${r.appointment.title}”.` : `You declined “${r.appointment.title}”.`, 'success');
    document.dispatchEvent(new CustomEvent('agenda:changed'));
    await markRead(n);
    render();
  } catch (err) {
    if (err.status === 409 && err.problem.conflicting_ids) {
      const { explainConflict } = await import('./editor.js');
      toast(await explainConflict(err.problem.conflicting_ids, 'Accepting would double-book you'), 'error', 9000);
    } else {
      toast(api.message(err), 'error');
    }
  }
}

/** Look up the caller's answer to invitations shown in the panel (once each). */
async function loadStatuses() {
  const wanted = state.items
    .filter((n) => n.kind === 'invite' && n.payload?.appointment_id && !state.myStatus.has(n.payload.appointment_id))
    .slice(0, 20);
  await Promise.all(
    wanted.map(async (n) => {
      const id = n.payload.appointment_id;
      state.myStatus.set(id, 'loading');
      try {
        const p = await api.get(`/api/appointments/${id}/my-status`);
        state.myStatus.set(id, p.status);
      } catch {
        state.myStatus.set(id, 'gone');
      }
    }),
  );
  render();
}

function item(n) {
  const d = describe(n);
  const children = [
    h('span', { class: 'notif-icon', 'aria-hidden': 'true' }, d.icon),
    h(
      'div',
      { class: 'notif-body' },
      h('p', { class: 'notif-text' }, d.text),
      d.sub ? h('p', { class: 'notif-sub muted' }, d.sub) : null,
      h('p', { class: 'notif-time muted' }, fmtAgo(n.created_at)),
    ),
  ];
  const actions = [];
  if (n.kind === 'invite' && n.payload?.appointment_id) {
    const st = state.myStatus.get(n.payload.appointment_id);
    if (st === 'pending') {
      actions.push(
        h('button', { type: 'button', class: 'button primary small', dataset: { action: 'accept' }, onclick: () => respond(n, true) }, 'Accept'),
        h('button', { type: 'button', class: 'button small', dataset: { action: 'decline' }, onclick: () => respond(n, false) }, 'Decline'),
      );
    } else if (st === 'accepted') {
      actions.push(h('span', { class: 'pill ok' }, 'Accepted'));
    } else if (st === 'auto') {
      actions.push(h('span', { class: 'pill ok' }, 'In your agenda'));
    } else if (st === 'declined') {
      actions.push(h('span', { class: 'pill muted' }, 'Declined'));
    } else if (st === 'gone') {
      actions.push(h('span', { class: 'pill muted' }, 'No longer available'));
    }
  }
  if (!n.read) {
    actions.push(h('button', { type: 'button', class: 'button ghost small', dataset: { action: 'read' }, onclick: () => markRead(n) }, 'Mark read'));
  }
  if (actions.length) children[1].append(h('div', { class: 'notif-buttons' }, actions));
  return h(
    'li',
    { class: ['notif', !n.read && 'unread'], dataset: { id: n.id, kind: n.kind, appointment: n.payload?.appointment_id || '' } },
    children,
  );
}

function render() {
  const list = el('notif-list');
  if (!list) return;
  if (!state.items.length) {
    replace(list, h('li', { class: 'notif-empty muted' }, 'Nothing yet. Invitations and changes show up here as they happen.'));
  } else {
    replace(list, state.items.map(item));
  }
  el('notif-more').hidden = !state.next;
  el('mark-all-read').disabled = state.unread === 0;
}

function add(n) {
  if (state.ids.has(n.id)) return false;
  state.ids.add(n.id);
  state.items.push(n);
  state.items.sort((a, b) => b.revision - a.revision || (a.id < b.id ? 1 : -1));
  return true;
}

/** Reload the first page; returns the revision it was read at. */
async function reload() {
  const r = await api.request('GET', '/api/notifications?limit=50');
  state.items = [];
  state.ids.clear();
  for (const n of r.data.notifications) add(n);
  state.next = r.data.next_cursor;
  setUnread(r.data.unread);
  render();
  loadStatuses();
  return r.revision;
}

async function loadOlder() {
  if (!state.next) return;
  try {
    const d = await api.get(`/api/notifications${api.qs({ limit: 50, cursor: state.next })}`);
    for (const n of d.notifications) add(n);
    state.next = d.next_cursor;
    render();
    loadStatuses();
  } catch (err) {
    toast(api.message(err), 'error');
  }
}

function onLive(n) {
  if (!add(n)) return;
  if (!n.read) setUnread(state.unread + 1);
  if (n.kind === 'invite') state.myStatus.delete(n.payload?.appointment_id);
  if (n.kind === 'appointment_updated' || n.kind === 'appointment_cancelled') state.myStatus.delete(n.payload?.appointment_id);
  render();
  loadStatuses();
  // Names come from the groups' member lists: refresh them for a group we do not know yet.
  if (n.payload?.group_id && !api.knowsGroup(n.payload.group_id) && n.kind !== 'group_deleted') {
    api.groups(true).then(render, () => {});
  }
  if (el('notif-panel').hidden) toast(describe(n).text, 'info');
  if (APPOINTMENT_KINDS.has(n.kind)) document.dispatchEvent(new CustomEvent('agenda:changed', { detail: n }));
  if (GROUP_KINDS.has(n.kind)) {
    api.groups(true).catch(() => {});
    document.dispatchEvent(new CustomEvent('agenda:groups', { detail: n }));
  }
}

function setLiveDot(up) {
  const dot = el('live-dot');
  if (!dot) return;
  dot.classList.toggle('up', up);
  dot.title = up ? 'Live updates: connected' : 'Live updates: reconnecting…';
  dot.dataset.state = up ? 'up' : 'down';
}

export function openPanel(open) {
  const panel = el('notif-panel');
  const show = open ?? panel.hidden;
  panel.hidden = !show;
  el('bell').setAttribute('aria-expanded', String(show));
  if (show) {
    loadStatuses();
    el('notif-close').focus();
  }
}

let wired = false;

/** Start for the signed-in user: load the list, then follow it live. */
export async function start() {
  if (!wired) {
    wired = true;
    el('bell').addEventListener('click', () => openPanel());
    el('notif-close').addEventListener('click', () => {
      openPanel(false);
      el('bell').focus();
    });
    el('notif-more').addEventListener('click', loadOlder);
    el('mark-all-read').addEventListener('click', async () => {
      try {
        const r = await api.post('/api/notifications/read-all');
        state.items.forEach((n) => (n.read = true));
        setUnread(r.unread);
        render();
      } catch (err) {
        toast(api.message(err), 'error');
      }
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !el('notif-panel').hidden && !document.querySelector('dialog[open]')) openPanel(false);
    });
  }
  stop();
  state.myStatus.clear();
  let revision = null;
  try {
    await api.groups(); // names of the people in the notifications
  } catch {
    /* shown as "Someone" until a refresh */
  }
  try {
    revision = await reload();
  } catch {
    /* the socket still brings new ones */
  }
  state.live = new Live(session.token, {
    onNotification: onLive,
    onResync: () => reload().catch(() => {}),
    onStatus: setLiveDot,
    onUnauthorized: () => session.signOut('Your session has expired or is no longer valid. Please sign in again.'),
  });
  state.live.start(revision);
}

export function stop() {
  state.live?.stop();
  state.live = null;
  state.items = [];
  state.ids.clear();
  state.next = null;
  setUnread(0);
  render();
}
