// Profile: display name; username and e-mail (need the current password); password change
// (answers a fresh token: every older one stops working); the calendar feed URL.

import * as api from './api.js';
import * as session from './session.js';
import { alertBox, busy, field, h, replace, toast } from './dom.js';

export function profileView(root) {
  const me = session.user();

  // Display name.
  const nameAlert = alertBox();
  const displayName = h('input', { name: 'display_name', required: true, maxlength: 100, value: me.display_name, autocomplete: 'name' });
  const nameForm = h(
    'form',
    { class: 'form card', id: 'profile-name-form' },
    h('h2', {}, 'Your name'),
    nameAlert,
    field('Display name', displayName, 'Shown to the members of your groups.'),
    h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button primary' }, 'Save name')),
  );
  nameForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    nameAlert.show(null);
    await busy(nameForm, async () => {
      try {
        const u = await api.patch('/api/me', { display_name: displayName.value.trim() });
        session.updateUser(u);
        nameAlert.show('Saved.', 'success');
      } catch (err) {
        nameAlert.show(api.message(err));
      }
    });
  });

  // Username and e-mail.
  const idAlert = alertBox();
  const username = h('input', { name: 'username', required: true, maxlength: 32, value: me.username, autocomplete: 'username' });
  const email = h('input', { name: 'email', type: 'email', required: true, maxlength: 254, value: me.email, autocomplete: 'email' });
  const current = h('input', { name: 'current_password', type: 'password', required: true, autocomplete: 'current-password' });
  const idForm = h(
    'form',
    { class: 'form card', id: 'profile-login-form' },
    h('h2', {}, 'Sign-in details'),
    idAlert,
    field('Username', username),
    field('E-mail', email),
    field('Current password', current, 'Needed to change your username or e-mail.'),
    h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button primary' }, 'Save sign-in details')),
  );
  idForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    idAlert.show(null);
    if (!idForm.reportValidity()) return;
    await busy(idForm, async () => {
      try {
        const u = await api.patch('/api/me', {
          username: username.value.trim(),
          email: email.value.trim(),
          current_password: current.value,
        });
        session.updateUser(u);
        current.value = '';
        idAlert.show('Saved.', 'success');
      } catch (err) {
        idAlert.show(err.status === 403 ? 'The current password is wrong.' : api.message(err));
        if (err.status === 403) current.select();
      }
    });
  });

  // Password.
  const pwAlert = alertBox();
  const oldPw = h('input', { name: 'current_password', type: 'password', required: true, autocomplete: 'current-password' });
  const newPw = h('input', { name: 'new_password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const again = h('input', { name: 'confirm_password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const pwForm = h(
    'form',
    { class: 'form card', id: 'password-form' },
    h('h2', {}, 'Password'),
    pwAlert,
    field('Current password', oldPw),
    field('New password', newPw, 'At least 8 characters. Other devices will have to sign in again.'),
    field('Repeat the new password', again),
    h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button primary' }, 'Change password')),
  );
  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    pwAlert.show(null);
    if (!pwForm.reportValidity()) return;
    if (newPw.value !== again.value) {
      pwAlert.show('The two new passwords differ.');
      again.focus();
      return;
    }
    await busy(pwForm, async () => {
      try {
        // The live socket of the old token is closed as revoked; it waits for this answer
        // (and goes on with the new token) instead of signing this tab out.
        await session.trackRenewal(
          (async () => session.signIn(await api.put('/api/me/password', { current_password: oldPw.value, new_password: newPw.value })))(),
        );
        pwForm.reset();
        pwAlert.show('Password changed. Other sessions were signed out.', 'success');
        document.dispatchEvent(new CustomEvent('agenda:token'));
      } catch (err) {
        pwAlert.show(err.status === 403 ? 'The current password is wrong.' : api.message(err));
      }
    });
  });

  // Calendar feed.
  const feed = h('div', { class: 'card' }, h('h2', {}, 'Calendar feed'), h('p', { class: 'muted' }, 'Loading…'));
  async function loadFeed() {
    try {
      const f = await api.get('/api/me/feed');
      const url = h('input', { readonly: true, value: f.url, class: 'mono', 'aria-label': 'Feed URL' });
      const rotate = h('button', { type: 'button', class: 'button small' }, 'Make a new URL');
      rotate.addEventListener('click', async () => {
        try {
          await api.post('/api/me/feed/rotate');
          toast('The old feed URL no longer works.', 'success');
          loadFeed();
        } catch (err) {
          toast(api.message(err), 'error');
        }
      });
      replace(
        feed,
        h('h2', {}, 'Calendar feed'),
        h('p', { class: 'muted' }, 'Subscribe from another calendar app with this secret URL (iCalendar). Anyone who has it can read your agenda.'),
        url,
        h('div', { class: 'form-buttons' }, h('a', { class: 'button small', href: '/api/agenda.ics', download: 'agenda.ics', id: 'ics-link' }, 'Download .ics'), rotate),
      );
      // The .ics download needs the bearer token: fetch it and hand the browser a blob.
      feed.querySelector('#ics-link').addEventListener('click', async (e) => {
        e.preventDefault();
        try {
          const res = await fetch('/api/agenda.ics', { headers: { Authorization: `Bearer ${session.token()}` } });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const blob = await res.blob();
          const a = h('a', { href: URL.createObjectURL(blob), download: 'agenda.ics' });
          document.body.append(a);
          a.click();
          a.remove();
        } catch (err) {
          toast(`The export failed: ${err.message}`, 'error');
        }
      });
    } catch (err) {
      replace(feed, h('h2', {}, 'Calendar feed'), h('p', { class: 'alert error' }, api.message(err)));
    }
  }
  loadFeed();

  replace(
    root,
    h(
      'section',
      { class: 'profile-page' },
      h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Profile'), h('p', { class: 'muted' }, `Signed in as @${me.username} · member since ${new Date(me.created_at).toLocaleDateString()}`))),
      h('div', { class: 'profile-grid' }, nameForm, idForm, pwForm, feed),
    ),
  );
}
