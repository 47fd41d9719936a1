// The REST client: bearer token, JSON, problem+json errors, Idempotency-Key on writes (so
// the automatic retry on 503 during a leader election is exactly-once), and sign-out on 401.

import * as session from './session.js';

export class ApiError extends Error {
  constructor(status, problem) {
    super(describeProblem(status, problem));
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || '';
  }
}

const FALLBACK = {
  400: 'The request was malformed.',
  401: 'Please sign in again.',
  403: 'You are not allowed to do that.',
  404: 'That no longer exists.',
  409: 'That clashes with something else.',
  412: 'Someone else changed this in the meantime.',
  413: 'That is too large.',
  422: 'Some of the input is not valid.',
  429: 'Too many attempts; wait a moment and try again.',
  503: 'The agenda is temporarily unavailable (the cluster may be electing a leader). Try again in a moment.',
};

function describeProblem(status, problem) {
  if (problem && problem.detail) {
    let text = String(problem.detail);
    text = text.charAt(0).toUpperCase() + text.slice(1);
    if (!/[.!?]$/.test(text)) text += '.';
    return text;
  }
  return FALLBACK[status] || `Unexpected error (HTTP ${status}).`;
}

/** The newest revision any answer carried. */
export let lastRevision = 0;

// The person's other tabs and windows of this browser hear about each change made here:
// the server notifies the other people concerned, never the one who acted.
const tabs = typeof BroadcastChannel === 'function' ? new BroadcastChannel('agenda.changes') : null;

/**
 * Run `fn({path, method})` when another tab of the same signed-in person changed something
 * through the API. Returns a function that stops listening.
 */
export function onOtherTabChange(fn) {
  if (!tabs) return () => {};
  const listener = (ev) => {
    const m = ev.data;
    if (m && typeof m.path === 'string' && m.user && m.user === session.user()?.id) fn(m);
  };
  tabs.addEventListener('message', listener);
  return () => tabs.removeEventListener('message', listener);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Call the API. Options: `body` (JSON), `headers`, `auth` (default true), `retries`
 * (default 3, for 503 and network errors). Resolves `{ data, status, headers, revision }`;
 * rejects with `ApiError` (status 0 when the server cannot be reached).
 */
export async function request(method, path, opts = {}) {
  const { body, headers = {}, auth = true, retries = 3 } = opts;
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const usedToken = auth ? session.token() : null;
  if (usedToken) h.Authorization = `Bearer ${usedToken}`;
  if (method !== 'GET' && method !== 'HEAD' && !h['Idempotency-Key']) h['Idempotency-Key'] = newKey();
  let attempt = 0;
  for (;;) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch {
      if (attempt++ < retries) {
        await sleep(500 * attempt);
        continue;
      }
      throw new ApiError(0, { detail: 'The server cannot be reached. Check your connection and try again.' });
    }
    const revision = Number(res.headers.get('X-Agenda-Revision')) || 0;
    if (revision > lastRevision) lastRevision = revision;
    if (res.status === 503 && attempt++ < retries) {
      const after = Math.min(3, Number(res.headers.get('Retry-After')) || 1);
      await sleep(after * 1000);
      continue;
    }
    let data = null;
    const text = res.status === 204 ? '' : await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (!res.ok) {
      const err = new ApiError(res.status, typeof data === 'object' ? data : null);
      err.retryAfter = Number(res.headers.get('Retry-After')) || 0; // seconds (429, 503)
      // Only when the token that was refused is still the session's: a request sent just
      // before a password change answered a fresh token must not sign the new one out.
      if (res.status === 401 && usedToken && session.token() === usedToken) {
        session.signOut('Your session has expired or is no longer valid. Please sign in again.');
      }
      throw err;
    }
    if (method !== 'GET' && method !== 'HEAD' && tabs && session.user()) {
      tabs.postMessage({ method, path: path.split('?')[0], user: session.user().id });
    }
    return { data, status: res.status, headers: res.headers, revision };
  }
}

export const get = async (path, opts) => (await request('GET', path, opts)).data;
export const post = async (path, body, opts) => (await request('POST', path, { ...opts, body })).data;
export const patch = async (path, body, opts) => (await request('PATCH', path, { ...opts, body })).data;
export const put = async (path, body, opts) => (await request('PUT', path, { ...opts, body })).data;
export const del = async (path, opts) => (await request('DELETE', path, opts)).data;

/** Query string from an object (skipping empty values). */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Every page of a listing that answers `next_cursor` (`/api/agenda`,
 * `/api/appointments`): follows the cursor until it is null and concatenates `key`.
 * Resolves `{ items, pages, complete }`; `complete` is false only if the server kept
 * answering a cursor past `maxPages` (then the caller says that some are missing).
 * `localStorage['agenda.pageSize']` (1–500) asks for smaller pages, to check the paging.
 */
export async function getAllPages(path, params, key, { maxPages = 100 } = {}) {
  const size = Number(localStorage.getItem('agenda.pageSize'));
  const limit = Number.isInteger(size) && size >= 1 && size <= 500 ? size : undefined;
  const items = [];
  const seen = new Set();
  let cursor = null;
  let pages = 0;
  for (;;) {
    const d = await get(`${path}${qs({ ...params, limit, cursor })}`);
    pages += 1;
    items.push(...(d[key] || []));
    cursor = d.next_cursor || null;
    if (!cursor) return { items, pages, complete: true };
    if (seen.has(cursor) || pages >= maxPages) return { items, pages, complete: false };
    seen.add(cursor);
  }
}

/** A readable message for any error. */
export function message(err) {
  return err?.message || String(err);
}

// ---- shared caches -------------------------------------------------------------------

let groupsCache = null;
let groupsPromise = null;
let invitesCache = null;
let invitesPromise = null;
/** user id -> display name, from every member list and invitation seen this session. */
const names = new Map();

function learnNames(groups) {
  for (const g of groups) {
    for (const m of g.members || []) names.set(m.user_id, m.display_name || m.username);
    for (const i of g.invited || []) learnInvitation(i);
  }
}

function learnInvitation(i) {
  if (i.user_id) names.set(i.user_id, i.display_name || i.username);
  if (i.invited_by) names.set(i.invited_by, i.invited_by_display_name || i.invited_by_username);
}

/** Remember the names in a group view or an invitation (for notifications). */
export function learn(x) {
  if (!x) return;
  if (x.group_id && x.invited_by) learnInvitation(x);
  else learnNames([x]);
}

/** The caller's groups (cached; `fresh` reloads). */
export async function groups(fresh = false) {
  if (groupsPromise) return groupsPromise;
  if (groupsCache && !fresh) return groupsCache;
  groupsPromise = get('/api/groups').then(
    (d) => {
      groupsCache = d.groups || [];
      groupsPromise = null;
      learnNames(groupsCache);
      return groupsCache;
    },
    (e) => {
      groupsPromise = null;
      throw e;
    },
  );
  return groupsPromise;
}

export function forgetCaches() {
  groupsCache = null;
  groupsPromise = null;
  invitesCache = null;
  invitesPromise = null;
  names.clear();
}

/**
 * The caller's pending group invitations, newest first (cached; `fresh` reloads). Every
 * load tells the page (`agenda:invitations`), so the groups page, the navigation count
 * and the notification panel stay in step.
 */
export async function groupInvitations(fresh = false) {
  if (invitesPromise) return invitesPromise;
  if (invitesCache && !fresh) return invitesCache;
  invitesPromise = get('/api/me/group-invitations').then(
    (d) => {
      invitesCache = (d.invitations || []).filter((i) => i.status === 'pending');
      invitesPromise = null;
      invitesCache.forEach(learnInvitation);
      document.dispatchEvent(new CustomEvent('agenda:invitations', { detail: invitesCache }));
      return invitesCache;
    },
    (e) => {
      invitesPromise = null;
      throw e;
    },
  );
  return invitesPromise;
}

/** The caller's pending invitation to a group, if the last load had one. */
export function pendingInvitation(groupId) {
  return (invitesCache || []).find((i) => i.group_id === groupId) || null;
}

/** Whether the pending invitations were loaded at least once. */
export const invitationsKnown = () => invitesCache !== null;

/**
 * Join (`join` true) or decline a group invitation. Resolves the group (joined) or the
 * answered invitation; rejects with `ApiError` (409 when the invitation is no longer
 * valid, 404 when it was withdrawn or lapsed). Either way the invitations and the groups
 * are reloaded and the page is told (`agenda:groups`).
 */
export async function answerGroupInvitation(groupId, join) {
  let kind = 'unanswered';
  try {
    const answer = await post(`/api/groups/${groupId}/${join ? 'join' : 'decline'}`, {});
    kind = join ? 'joined' : 'declined';
    return answer;
  } finally {
    await Promise.allSettled([groupInvitations(true), groups(true)]);
    document.dispatchEvent(new CustomEvent('agenda:groups', { detail: { kind, payload: { group_id: groupId } } }));
  }
}

/** Best-known display name of a user id (from the caller, their groups and invitations). */
export function userName(id) {
  const me = session.user();
  if (me && me.id === id) return 'You';
  return names.get(id) || 'Someone';
}

export function knowsGroup(id) {
  return (groupsCache || []).some((g) => g.id === id);
}

export function groupName(id) {
  const g = (groupsCache || []).find((x) => x.id === id);
  return g ? g.name : 'a group';
}
