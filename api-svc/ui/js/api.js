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
  if (auth && session.token()) h.Authorization = `Bearer ${session.token()}`;
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
      if (res.status === 401 && auth && session.token()) {
        session.signOut('Your session has expired or is no longer valid. Please sign in again.');
      }
      throw err;
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

/** A readable message for any error. */
export function message(err) {
  return err?.message || String(err);
}

// ---- shared caches -------------------------------------------------------------------

let groupsCache = null;
let groupsPromise = null;

/** The caller's groups (cached; `fresh` reloads). */
export async function groups(fresh = false) {
  if (groupsPromise) return groupsPromise;
  if (groupsCache && !fresh) return groupsCache;
  groupsPromise = get('/api/groups').then(
    (d) => {
      groupsCache = d.groups || [];
      groupsPromise = null;
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
}

/** Best-known display name of a user id (from the caller and their groups' members). */
export function userName(id) {
  const me = session.user();
  if (me && me.id === id) return 'You';
  for (const g of groupsCache || []) {
    const m = g.members.find((x) => x.user_id === id);
    if (m) return m.display_name || m.username;
  }
  return 'Someone';
}

export function knowsGroup(id) {
  return (groupsCache || []).some((g) => g.id === id);
}

export function groupName(id) {
  const g = (groupsCache || []).find((x) => x.id === id);
  return g ? g.name : 'a group';
}
