// Tiny DOM helpers. Text always goes through text nodes (never innerHTML), so user data
// cannot inject markup; styles are set through the CSSOM only (the CSP forbids inline
// style attributes).

/**
 * Create an element. `attrs`: `class`, `text`, `dataset` object, `style` object (CSSOM),
 * `on<event>` handlers, boolean properties (`hidden`, `disabled`, ...) and plain
 * attributes. Children: nodes, strings, numbers, arrays; null/false/undefined are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style') for (const [p, v] of Object.entries(value)) el.style.setProperty(p, v);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else if (key in el && typeof el[key] !== 'function' && !key.includes('-') && key !== 'list' && key !== 'form') {
      try {
        el[key] = value;
      } catch {
        el.setAttribute(key, value);
      }
    } else el.setAttribute(key, value);
  }
  append(el, children);
  return el;
}

/** Append children (see `h`). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Remove every child, then append `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** `document.querySelector` within `root`. */
export const $ = (sel, root = document) => root.querySelector(sel);

/** A short-lived message in the corner. */
export function toast(message, kind = 'info', ms = kind === 'error' ? 6000 : 3500) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: ['toast', kind] }, message);
  box.append(t);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => t.classList.add('leaving'), ms - 300);
  setTimeout(() => t.remove(), ms);
}

/** A labelled form field: `<label>` + control + optional hint, wired with ids. */
let fieldSeq = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hid = `${id}-hint`;
    control.setAttribute('aria-describedby', hid);
    parts.push(h('small', { class: 'hint', id: hid }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

/** An alert area for form errors; `show(text)` / `show(null)`. */
export function alertBox() {
  const el = h('div', { class: 'alert', role: 'alert', hidden: true });
  el.show = (content, kind = 'error') => {
    if (!content) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    el.className = `alert ${kind}`;
    replace(el, content);
    el.hidden = false;
  };
  return el;
}

/** Disable a form's controls while `fn` runs. */
export async function busy(form, fn) {
  const controls = [...form.querySelectorAll('button, input, select, textarea')].filter((c) => !c.disabled);
  controls.forEach((c) => (c.disabled = true));
  form.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    controls.forEach((c) => (c.disabled = false));
    form.removeAttribute('aria-busy');
  }
}

/** A button that asks for a second click before running `action`. */
export function confirmButton(label, confirmLabel, action, cls = 'danger') {
  let armed = false;
  let timer;
  const b = h('button', { type: 'button', class: ['button', cls] }, label);
  b.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      b.textContent = confirmLabel;
      b.classList.add('armed');
      timer = setTimeout(() => {
        armed = false;
        b.textContent = label;
        b.classList.remove('armed');
      }, 4000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    b.textContent = label;
    b.classList.remove('armed');
    await action();
  });
  return b;
}

/** Open a modal `<dialog>` with `content`; resolves when it closes. Returns { dialog, close }. */
/**
 * A modal dialog. `guard()`, when given, is asked before the dialog closes by Escape, the
 * close button or a click outside; it returns false to keep it open (and says why).
 */
export function modal(title, content, { wide = false, guard = null } = {}) {
  const heading = h('h2', { id: `dlg-title-${++fieldSeq}` }, title);
  const close = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close' }, '\u2715');
  const dialog = h(
    'dialog',
    { class: ['modal', wide && 'wide'], 'aria-labelledby': heading.id },
    h('div', { class: 'modal-head' }, heading, close),
    h('div', { class: 'modal-body' }, content),
  );
  const tryClose = () => {
    if (!guard || guard()) dialog.close();
  };
  close.addEventListener('click', tryClose);
  dialog.addEventListener('cancel', (e) => {
    if (guard && !guard()) e.preventDefault();
  });
  dialog.addEventListener('close', () => dialog.remove());
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) tryClose();
  });
  document.body.append(dialog);
  dialog.showModal();
  const first = dialog.querySelector('input:not([type=hidden]):not([disabled]), select, textarea, .modal-body button');
  if (first) first.focus();
  return { dialog, close: () => dialog.close(), setTitle: (t) => (heading.textContent = t) };
}
