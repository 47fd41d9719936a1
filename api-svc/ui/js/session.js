// The signed-in session: JWT and user, kept in localStorage so a reload keeps you signed
// in. Listeners hear about sign-in, sign-out and profile changes.

const KEY = 'agenda.session';
const listeners = new Set();
let current = null;

function decodeClaims(token) {
  try {
    const part = token.split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/** Whether the token's `exp` has passed (tokens without a readable `exp` are left to the server). */
export function expired(token) {
  const claims = decodeClaims(token);
  return Boolean(claims && typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now());
}

export function load() {
  try {
    const raw = localStorage.getItem(KEY);
    current = raw ? JSON.parse(raw) : null;
  } catch {
    current = null;
  }
  if (current && (!current.token || !current.user)) current = null;
  return current;
}

export const get = () => current;
export const token = () => current?.token ?? null;
export const user = () => current?.user ?? null;

function save() {
  if (current) localStorage.setItem(KEY, JSON.stringify(current));
  else localStorage.removeItem(KEY);
  for (const fn of listeners) fn(current);
}

export function signIn({ token, user }) {
  current = { token, user };
  save();
}

export function updateUser(user) {
  if (!current) return;
  current = { ...current, user };
  save();
}

// A request in flight that will answer a fresh token (a password change). A socket the
// server closes because the old token was revoked waits for it before deciding to sign out.
let renewal = null;

/** Note that `promise` will answer a new session; returns it unchanged. */
export function trackRenewal(promise) {
  const done = Promise.resolve(promise).then(
    () => {},
    () => {},
  );
  renewal = done;
  done.then(() => {
    if (renewal === done) renewal = null;
  });
  return promise;
}

/** Resolves once no token renewal is in flight. */
export async function renewalSettled() {
  while (renewal) await renewal;
}

/** Forget the session; `reason` is shown on the login page. */
export function signOut(reason) {
  if (reason) sessionStorage.setItem('agenda.logoutReason', reason);
  current = null;
  save();
}

/** The message left by the last forced sign-out, once. */
export function takeReason() {
  const r = sessionStorage.getItem('agenda.logoutReason');
  sessionStorage.removeItem('agenda.logoutReason');
  return r;
}

export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// Another tab signed in or out: follow it.
window.addEventListener('storage', (e) => {
  if (e.key !== KEY) return;
  load();
  for (const fn of listeners) fn(current);
});
