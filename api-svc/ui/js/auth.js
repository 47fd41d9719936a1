// Sign-in and registration pages.

import * as api from './api.js';
import * as session from './session.js';
import { alertBox, busy, field, h, replace } from './dom.js';

function shell(root, title, subtitle, form, footer) {
  replace(
    root,
    h(
      'section',
      { class: 'auth-page' },
      h(
        'div',
        { class: 'auth-card card' },
        h('div', { class: 'auth-brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 40, height: 40 }), h('span', {}, 'Agenda')),
        h('h1', {}, title),
        h('p', { class: 'muted' }, subtitle),
        form,
        h('p', { class: 'auth-footer' }, footer),
      ),
      h(
        'p',
        { class: 'auth-tagline muted' },
        'A replicated calendar: seven slots, one agenda, no single point of failure.',
      ),
    ),
  );
}

export function loginView(root) {
  const alert = alertBox();
  const reason = session.takeReason();
  if (reason) alert.show(reason, 'warning');
  const login = h('input', { name: 'login', autocomplete: 'username', required: true, maxlength: 254 });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    { class: 'form', id: 'login-form', novalidate: false },
    alert,
    field('Username or e-mail', login),
    field('Password', password),
    h('button', { type: 'submit', class: 'button primary block' }, 'Sign in'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.show(null);
    await busy(form, async () => {
      try {
        const s = await api.post('/login', { login: login.value.trim(), password: password.value }, { auth: false });
        session.signIn(s);
        location.hash = sessionStorage.getItem('agenda.after') || '#/week';
      } catch (err) {
        alert.show(err.status === 401 ? 'Wrong username/e-mail or password.' : api.message(err));
        password.select();
      }
    });
  });
  shell(root, 'Sign in', 'Welcome back. Sign in to see your agenda.', form, [
    'No account yet? ',
    h('a', { href: '#/register' }, 'Create one'),
  ]);
  login.focus();
}

export function registerView(root) {
  const alert = alertBox();
  const username = h('input', {
    name: 'username',
    autocomplete: 'username',
    required: true,
    minlength: 3,
    maxlength: 32,
    pattern: '[A-Za-z0-9_.\\-]{3,32}',
  });
  const displayName = h('input', { name: 'display_name', autocomplete: 'name', required: true, maxlength: 100 });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const fields = { username, display_name: displayName, email, password };
  const form = h(
    'form',
    { class: 'form', id: 'register-form' },
    alert,
    field('Username', username, '3–32 characters: letters, digits, “_”, “.” or “-”.'),
    field('Display name', displayName, 'The name other people see.'),
    field('E-mail', email),
    field('Password', password, 'At least 8 characters.'),
    h('button', { type: 'submit', class: 'button primary block' }, 'Create account'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.show(null);
    if (!form.reportValidity()) return;
    await busy(form, async () => {
      try {
        const s = await api.post(
          '/register',
          {
            username: username.value.trim(),
            display_name: displayName.value.trim(),
            email: email.value.trim(),
            password: password.value,
          },
          { auth: false },
        );
        session.signIn(s);
        location.hash = sessionStorage.getItem('agenda.after') || '#/week';
      } catch (err) {
        alert.show(api.message(err));
        const f = fields[err.problem?.field];
        if (f) f.focus();
      }
    });
  });
  shell(root, 'Create your account', 'It takes ten seconds.', form, [
    'Already registered? ',
    h('a', { href: '#/login' }, 'Sign in'),
  ]);
  username.focus();
}
