// The notification panel: list (newest first, "load older"), unread badge, mark read,
// accept/decline appointment invitations, join/decline group invitations, and live updates
// over the WebSocket. Appointment and group notifications also tell the open view to
// refresh (`agenda:changed`, `agenda:groups`). The count of pending group invitations is
// shown next to "Groups" in the navigation. When the server ends the socket because the
// token expired or was revoked, the user is signed out with a message.

import * as api from './api.js';
import * as session from './session.js';
import { Live } from './live.js';
import { h, replace, toast } from './dom.js';
import { fmtAgo, fmtDay, fmtRange } from './time.js';

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
  'participant_left',
]);
const GROUP_KINDS = new Set([
  'group_member_added',
  'group_member_removed',
  'group_deleted',
  'group_invite',
  'group_member_joined',
  'group_invite_declined',
  'group_invite_withdrawn',
]);
/** Kinds that change the caller's pending group invitations. */
const INVITATION_KINDS = new Set(['group_invite', 'group_invite_withdrawn', 'group_deleted']);

/** Group invitations answered in this tab: group id -> 'joined' | 'declined'. */
const answered = new Map();

function quoted(p) {
  return p.title ? `“${p.title}”` : 'an appointment';
}

function group(p) {
  return `the group “${p.group_name || 'a group'}”`;
}

const CANCEL_REASONS = {
  organiser_left: 'the organiser left the group',
  group_deleted: 'the group was deleted',
};

function when(p) {
  return typeof p.start_ms === 'number' && typeof p.end_ms === 'number' ? fmtRange(p.start_ms, p.end_ms) : '';
}

/** Words for one notification. */
export function describe(n) {
  const p = n.payload || {};
  const who = (id) => api.userName(id);
  switch (n.kind) {
    case 'invite':
      // A junior member of a hierarchical group is booked at once (`auto`): nothing to answer.
      if (p.status === 'auto') {
        return { icon: '★', text: `${who(p.owner_id)} booked you into ${quoted(p)}`, sub: [when(p), 'it is in your agenda'].filter(Boolean).join(' · ') };
      }
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
      // A move asks everyone who had to accept to answer again (DESIGN §7, RFC 6638).
      if (p.rescheduled) return { icon: '✎', text: `${who(p.owner_id)} moved ${quoted(p)}`, sub: when(p) ? `now ${when(p)}` : '' };
      return { icon: '✎', text: `${quoted(p)} was changed`, sub: when(p) };
    case 'appointment_cancelled': {
      const why = p.declined_by ? `${who(p.declined_by)} declined` : CANCEL_REASONS[p.reason];
      return { icon: '⊘', text: `${quoted(p)} was cancelled${why ? ` (${why})` : ''}`, sub: when(p) };
    }
    case 'participant_left':
      return {
        icon: '−',
        text: `${who(p.user_id)} is no longer taking part in ${quoted(p)}: they left the group`,
        sub: when(p),
      };
    case 'group_invite': {
      const expires = typeof p.expires_at_ms === 'number' ? `answer by ${fmtDay(p.expires_at_ms)}` : '';
      return {
        icon: '✉',
        text: `${p.invited_by_name || who(p.invited_by)} invited you to join ${group(p)}`,
        sub: [p.group_type === 'hierarchical' ? `offered rank ${p.rank}` : '', expires].filter(Boolean).join(' · '),
      };
    }
    case 'group_member_joined':
      return {
        icon: '+',
        text: `${who(p.user_id)} joined ${group(p)}`,
        sub: [p.rank ? `rank ${p.rank}` : '', p.invited_by && p.invited_by !== session.user()?.id ? `invited by ${who(p.invited_by)}` : ''].filter(Boolean).join(' · '),
      };
    case 'group_invite_declined':
      return { icon: '✕', text: `${who(p.user_id)} declined your invitation to ${group(p)}`, sub: '' };
    case 'group_invite_withdrawn':
      return {
        icon: '⊘',
        text:
          p.reason === 'group_deleted'
            ? `Your invitation to ${group(p)} was withdrawn: the group was deleted`
            : `${p.withdrawn_by ? who(p.withdrawn_by) : 'Someone'} withdrew your invitation to ${group(p)}`,
        sub: '',
      };
    case 'group_member_added':
      // No longer produced (membership is by consent); kept for old notifications.
      return { icon: '+', text: `You were added to ${group(p)}`, sub: '' };
    case 'group_member_removed':
      return {
        icon: '−',
        text:
          p.user_id && p.user_id !== session.user()?.id
            ? `${who(p.user_id)} left ${group(p)}`
            : p.left
              ? `You left ${group(p)}`
              : `You were removed from ${group(p)}`,
        sub: '',
      };
    case 'group_deleted':
      return { icon: '✕', text: `The group “${p.group_name || 'a group'}” was deleted`, sub: '' };
    case 'password_changed':
      return { icon: '!', text: 'Your password was changed', sub: 'Sessions signed in with the old password were signed out.' };
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

/** Join or decline a group invitation from the panel. */
async function answerGroup(n, join) {
  const gid = n.payload.group_id;
  try {
    const r = await api.answerGroupInvitation(gid, join);
    answered.set(gid, join ? 'joined' : 'declined');
    toast(join ? `You joined “${r.name}”.` : `You declined the invitation to “${n.payload.group_name}”.`, 'success');
  } catch (err) {
    toast(err.status === 404 ? 'This invitation is no longer open (it was withdrawn, answered or has lapsed).' : api.message(err), 'error', 9000);
  }
  render();
}

/** Mark the unread `group_invite` notifications of a group read (it was answered elsewhere). */
async function markGroupInvitesRead(groupId) {
  const unread = state.items.filter((n) => n.kind === 'group_invite' && !n.read && n.payload?.group_id === groupId);
  for (const n of unread) await markRead(n);
}

/** Notifications that may ask for an answer: an invitation, and a move (answer again). */
function answerable(n) {
  return Boolean(n.payload?.appointment_id) && (n.kind === 'invite' || (n.kind === 'appointment_updated' && n.payload.rescheduled === true));
}

/** Look up the caller's answer to invitations shown in the panel (once each). */
async function loadStatuses() {
  const wanted = state.items
    .filter((n) => answerable(n) && !state.myStatus.has(n.payload.appointment_id))
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

/** Buttons or a status for a `group_invite`; only the newest one of a group is answerable. */
function groupInviteActions(n, newest) {
  const gid = n.payload?.group_id;
  if (!gid || !newest) return [];
  if (api.pendingInvitation(gid)) {
    return [
      h('button', { type: 'button', class: 'button primary small', dataset: { action: 'join' }, onclick: () => answerGroup(n, true) }, 'Join'),
      h('button', { type: 'button', class: 'button small', dataset: { action: 'decline' }, onclick: () => answerGroup(n, false) }, 'Decline'),
    ];
  }
  if (!api.invitationsKnown()) return [];
  if (answered.get(gid) === 'joined' || api.knowsGroup(gid)) return [h('span', { class: 'pill ok' }, 'Joined')];
  if (answered.get(gid) === 'declined') return [h('span', { class: 'pill muted' }, 'Declined')];
  return [h('span', { class: 'pill muted' }, 'No longer open')];
}

function item(n, newestInvite, newestAnswerable) {
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
  // Only the newest notice of an appointment is answered: an older invitation names the
  // time before a move.
  if (answerable(n) && newestAnswerable) {
    const st = state.myStatus.get(n.payload.appointment_id);
    if (st === 'pending') {
      actions.push(
        h('button', { type: 'button', class: 'button primary small', dataset: { action: 'accept' }, onclick: () => respond(n, true) }, 'Accept'),
        h('button', { type: 'button', class: 'button small', dataset: { action: 'decline' }, onclick: () => respond(n, false) }, 'Decline'),
      );
    } else if (st === 'accepted') {
      actions.push(h('span', { class: 'pill ok' }, 'Accepted'));
    } else if (st === 'auto' && n.kind === 'invite') {
      actions.push(h('span', { class: 'pill ok' }, 'In your agenda'));
    } else if (st === 'declined') {
      actions.push(h('span', { class: 'pill muted' }, 'Declined'));
    } else if (st === 'gone') {
      actions.push(h('span', { class: 'pill muted' }, 'No longer available'));
    }
  }
  if (n.kind === 'group_invite') actions.push(...groupInviteActions(n, newestInvite));
  if (!n.read) {
    actions.push(h('button', { type: 'button', class: 'button ghost small', dataset: { action: 'read' }, onclick: () => markRead(n) }, 'Mark read'));
  }
  if (actions.length) children[1].append(h('div', { class: 'notif-buttons' }, actions));
  return h(
    'li',
    {
      class: ['notif', !n.read && 'unread'],
      dataset: { id: n.id, kind: n.kind, appointment: n.payload?.appointment_id || '', group: n.payload?.group_id || '' },
    },
    children,
  );
}

/** The count of pending group invitations next to "Groups" in the navigation. */
function setInviteCount(invitations) {
  const badge = el('invite-count');
  if (!badge) return;
  const n = invitations?.length || 0;
  badge.hidden = n === 0;
  replace(
    badge,
    h('span', { 'aria-hidden': 'true' }, String(n)),
    h('span', { class: 'visually-hidden' }, ` (${n} pending invitation${n === 1 ? '' : 's'})`),
  );
}

function render() {
  const list = el('notif-list');
  if (!list) return;
  if (!state.items.length) {
    replace(list, h('li', { class: 'notif-empty muted' }, 'Nothing yet. Invitations and changes show up here as they happen.'));
  } else {
    const seen = new Set(); // groups whose newest invitation was already listed
    const asked = new Set(); // appointments whose newest answerable notice was listed
    replace(
      list,
      state.items.map((n) => {
        const gid = n.kind === 'group_invite' ? n.payload?.group_id : null;
        const newest = Boolean(gid) && !seen.has(gid);
        if (gid) seen.add(gid);
        const aid = answerable(n) ? n.payload.appointment_id : null;
        const newestAnswerable = Boolean(aid) && !asked.has(aid);
        if (aid) asked.add(aid);
        return item(n, newest, newestAnswerable);
      }),
    );
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
  api.groupInvitations(true).catch(() => {});
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

async function onLive(n) {
  if (!add(n)) return;
  if (!n.read) setUnread(state.unread + 1);
  if (n.kind === 'invite') state.myStatus.delete(n.payload?.appointment_id);
  if (n.kind === 'appointment_updated' || n.kind === 'appointment_cancelled') state.myStatus.delete(n.payload?.appointment_id);
  if (n.kind === 'group_invite') answered.delete(n.payload?.group_id);
  render();
  loadStatuses();
  // Names and invitations first, so the toast and the panel can say who and offer Join.
  const refresh = [];
  if (GROUP_KINDS.has(n.kind) || (n.payload?.group_id && !api.knowsGroup(n.payload.group_id))) refresh.push(api.groups(true));
  if (INVITATION_KINDS.has(n.kind)) refresh.push(api.groupInvitations(true));
  if (refresh.length) {
    await Promise.allSettled(refresh);
    render();
  }
  if (el('notif-panel').hidden) toast(describe(n).text, 'info');
  if (APPOINTMENT_KINDS.has(n.kind)) document.dispatchEvent(new CustomEvent('agenda:changed', { detail: n }));
  if (GROUP_KINDS.has(n.kind)) document.dispatchEvent(new CustomEvent('agenda:groups', { detail: n }));
}

/**
 * The server ended the socket for the token's sake. If this tab already holds a newer
 * token (a password change made here), go on with it; otherwise sign out with a reason.
 */
async function onAuthEnd(code, _message, usedToken) {
  const live = state.live;
  await session.renewalSettled();
  if (live !== state.live || !session.token()) return; // restarted or signed out meanwhile
  if (session.token() !== usedToken) {
    state.live.start(state.live.after);
    return;
  }
  session.signOut(
    code === 'token_revoked'
      ? 'Your password was changed, so this session was signed out. Please sign in again with the new password.'
      : code === 'token_expired'
        ? 'Your session has expired. Please sign in again.'
        : 'Your session is no longer valid. Please sign in again.',
  );
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
    document.addEventListener('agenda:invitations', (e) => {
      setInviteCount(e.detail);
      render();
    });
    // An invitation answered in another tab: what this one knows of the answers is stale.
    document.addEventListener('agenda:changed', (e) => {
      if (!e.detail?.otherTab) return;
      state.myStatus.clear();
      if (el('notif-panel').hidden) render();
      else loadStatuses();
    });
    // A group invitation answered anywhere (groups page, panel): its notification is done.
    document.addEventListener('agenda:groups', (e) => {
      if ((e.detail?.kind === 'joined' || e.detail?.kind === 'declined') && e.detail.payload?.group_id) {
        answered.set(e.detail.payload.group_id, e.detail.kind);
        markGroupInvitesRead(e.detail.payload.group_id);
        render();
      }
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
    onAuthEnd,
  });
  state.live.start(revision);
}

export function stop() {
  state.live?.stop();
  state.live = null;
  state.items = [];
  state.ids.clear();
  state.next = null;
  answered.clear();
  setUnread(0);
  setInviteCount([]);
  render();
}
