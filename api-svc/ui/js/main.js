// Entry point: the shell (top bar, navigation, notification panel) and the hash router.
//
//   #/login  #/register
//   #/day/YYYY-MM-DD  #/week/YYYY-MM-DD  #/month/YYYY-MM-DD  #/list/YYYY-MM-DD
//   #/groups  #/groups/ID  #/groups/ID/agenda[/YYYY-MM-DD[/DAYS]]
//   #/profile  #/cluster

import * as api from './api.js';
import * as session from './session.js';
import * as notifications from './notifications.js';
import { h, replace } from './dom.js';
import { loginView, registerView } from './auth.js';
import { calendarView } from './calendar.js';
import { groupAgendaView, groupView, groupsView } from './groups.js';
import { profileView } from './profile.js';
import { clusterView } from './cluster.js';
import { dateKey } from './time.js';

const main = document.getElementById('main');
let cleanup = null;
let liveFor = null; // token the notification feed runs with

const PUBLIC = new Set(['login', 'register']);

function parse(hash) {
  const [path] = (hash || '').replace(/^#\/?/, '').split('?');
  return path.split('/').filter(Boolean).map(decodeURIComponent);
}

function navTo(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function syncChrome(section) {
  const signedIn = Boolean(session.get());
  document.getElementById('topbar').hidden = !signedIn;
  document.body.classList.toggle('signed-in', signedIn);
  if (!signedIn) {
    document.getElementById('notif-panel').hidden = true;
    return;
  }
  const u = session.user();
  document.getElementById('whoami').textContent = u.display_name || u.username;
  for (const a of document.querySelectorAll('#mainnav a')) {
    const on = a.dataset.nav === section;
    a.classList.toggle('active', on);
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function ensureLive() {
  const t = session.token();
  if (t && t !== liveFor) {
    liveFor = t;
    api.groups(true).catch(() => {});
    notifications.start();
  } else if (!t && liveFor) {
    liveFor = null;
    notifications.stop();
    api.forgetCaches();
  }
}

function route() {
  const parts = parse(location.hash);
  const [head = '', ...rest] = parts;
  if (!session.get() && !PUBLIC.has(head)) {
    if (head) sessionStorage.setItem('agenda.after', location.hash);
    return navTo('#/login');
  }
  if (session.get() && PUBLIC.has(head)) return navTo(sessionStorage.getItem('agenda.after') || `#/week/${dateKey(new Date())}`);
  if (session.get() && sessionStorage.getItem('agenda.after')) sessionStorage.removeItem('agenda.after');

  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* ignore */
    }
    cleanup = null;
  }
  document.querySelectorAll('dialog[open]').forEach((d) => d.close());
  // A new page starts at its top, not at the previous page's scroll offset.
  window.scrollTo(0, 0);
  ensureLive();

  let section = head;
  let result;
  switch (head) {
    case 'login':
      result = loginView(main);
      break;
    case 'register':
      result = registerView(main);
      break;
    case 'day':
    case 'week':
    case 'month':
    case 'list':
      section = 'calendar';
      result = calendarView(main, { mode: head, date: rest[0] || dateKey(new Date()) });
      break;
    case 'groups':
      if (rest.length >= 2 && rest[1] === 'agenda') result = groupAgendaView(main, { id: rest[0], date: rest[2], days: rest[3] });
      else if (rest.length >= 1) result = groupView(main, { id: rest[0] });
      else result = groupsView(main);
      break;
    case 'profile':
      result = profileView(main);
      break;
    case 'cluster':
      result = clusterView(main);
      break;
    default:
      return navTo(`#/week/${dateKey(new Date())}`);
  }
  cleanup = typeof result === 'function' ? result : null;
  syncChrome(section);
  main.focus({ preventScroll: true });
}

// Boot: check a stored session before showing anything.
async function boot() {
  const s = session.load();
  if (s && session.expired(s.token)) {
    session.signOut('Your session has expired. Please sign in again.');
  } else if (s) {
    replace(main, h('p', { class: 'boot muted' }, 'Loading your agenda…'));
    try {
      session.updateUser(await api.get('/api/me'));
    } catch {
      // 401 already signed out (with a message); otherwise the server is busy or
      // unreachable: keep the session, the views retry.
    }
  }
  session.onChange(() => {
    if (!session.get()) {
      liveFor = null;
      notifications.stop();
      api.forgetCaches();
      navTo('#/login');
    } else {
      syncChrome(document.querySelector('#mainnav a.active')?.dataset.nav || '');
    }
  });
  document.addEventListener('agenda:token', () => ensureLive());
  // A change made in another tab of this browser: refresh what this one shows.
  api.onOtherTabChange(async ({ path }) => {
    const groups = path.startsWith('/api/groups');
    if (groups) await Promise.allSettled([api.groups(true), api.groupInvitations(true)]);
    if (groups || path.startsWith('/api/appointments')) {
      document.dispatchEvent(new CustomEvent('agenda:changed', { detail: { otherTab: true } }));
    }
    if (groups) document.dispatchEvent(new CustomEvent('agenda:groups', { detail: { otherTab: true } }));
  });
  document.getElementById('logout').addEventListener('click', () => session.signOut());
  window.addEventListener('hashchange', route);
  // Expire the session at the token's `exp` even if nothing else happens.
  setInterval(() => {
    const t = session.token();
    if (t && session.expired(t)) session.signOut('Your session has expired. Please sign in again.');
  }, 30000);
  route();
}

boot();
