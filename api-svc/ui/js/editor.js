// The appointment dialog: create (personal or group), view, edit with the version check
// (`If-Match`; a 412 reloads the latest version and says so), delete, and answer an
// invitation. Conflicts (409) are explained in words with the clashing appointments named.

import * as api from './api.js';
import * as session from './session.js';
import { alertBox, busy, confirmButton, field, h, modal, toast } from './dom.js';
import { fmtRange, fromLocalInput, iso, toLocalInput } from './time.js';

/** Who sees what (DESIGN §7 "Privacy"), in the words shown next to the choice. */
export const PRIVACY = {
  full: {
    label: 'Full details',
    help: 'Full — people in your groups see the title and description.',
  },
  freebusy: {
    label: 'Free/busy',
    help: 'Free/busy — only people senior to you in a hierarchical group you both belong to see the title; others see “Busy”.',
  },
  private: {
    label: 'Private',
    help: 'Private — only the people invited see the title; everyone else sees “Busy”.',
  },
};

const STATUS_WORDS = {
  accepted: 'Accepted',
  auto: 'Booked automatically',
  pending: 'Has not answered',
  declined: 'Declined',
};

/** "“Standup” (Mon 2 Jun, 10:00 – 10:30)" for each id, fetched; unknown ones stay generic. */
export async function explainConflict(ids, lead = 'This overlaps with') {
  const names = await Promise.all(
    (ids || []).map(async (id) => {
      try {
        const a = await api.get(`/api/appointments/${id}`);
        return `“${a.title}” (${fmtRange(a.start_time, a.end_time)})`;
      } catch {
        return 'an appointment you cannot see';
      }
    }),
  );
  if (!names.length) return `${lead} another appointment.`;
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  return `${lead} ${list}. Pick another time, or move ${names.length === 1 ? 'that appointment' : 'those appointments'} first.`;
}

export function myParticipation(a) {
  const me = session.user()?.id;
  return a.participants?.find((p) => p.user_id === me) || null;
}

/** A short status for an appointment from the caller's point of view. */
export function statusLabel(a) {
  const mine = myParticipation(a);
  if (a.status === 'cancelled') return 'Cancelled';
  if (mine && mine.status === 'pending') return mine.conflict ? 'Invitation · overlaps' : 'Invitation';
  if (mine && mine.status === 'declined') return 'Declined';
  if (a.status === 'tentative') {
    const yes = a.participants.filter((p) => p.status === 'accepted' || p.status === 'auto').length;
    return `Tentative · ${yes}/${a.participants.length} accepted`;
  }
  if (a.group_id) return 'Confirmed';
  return '';
}

/**
 * Open the dialog. `opts.appointment`: an existing one (view/edit); otherwise create with
 * `opts.start`/`opts.end` (Dates) and optional `opts.groupId`. `opts.onChange()` runs
 * after any successful change.
 */
export async function openEditor(opts = {}) {
  const me = session.user();
  let a = opts.appointment || null;
  const alert = alertBox();
  const body = h('div', { class: 'editor' }, alert);
  // Unsaved changes are not thrown away by Escape, the close button, a click outside or
  // leaving the page: the person is asked first.
  let unsaved = () => false;
  const discardBar = h(
    'div',
    { class: 'alert warning unsaved', id: 'unsaved', role: 'alert' },
    h('p', {}, 'You have unsaved changes.'),
    h(
      'div',
      { class: 'form-buttons' },
      h('button', { type: 'button', class: 'button small', id: 'unsaved-keep', onclick: () => keepEditing() }, 'Keep editing'),
      h('button', { type: 'button', class: 'button small danger', id: 'unsaved-discard', onclick: () => discard() }, 'Discard changes'),
    ),
  );
  // Shown (at the top of the dialog) only while the question is asked.
  const guard = () => {
    if (!unsaved()) return true;
    body.prepend(discardBar);
    discardBar.querySelector('#unsaved-keep').focus();
    return false;
  };
  const dlg = modal(a ? (a.owner_id === me.id ? 'Edit appointment' : 'Appointment') : 'New appointment', body, { wide: true, guard });
  function keepEditing() {
    discardBar.remove();
    dlg.dialog.querySelector('input[name=title]')?.focus();
  }
  function discard() {
    unsaved = () => false;
    dlg.close();
  }
  const onBeforeUnload = (e) => {
    if (unsaved()) {
      e.preventDefault();
      e.returnValue = '';
    }
  };
  window.addEventListener('beforeunload', onBeforeUnload);
  dlg.dialog.addEventListener('close', () => window.removeEventListener('beforeunload', onBeforeUnload));
  let groups = [];
  try {
    groups = await api.groups();
    if (opts.groupId && !groups.some((g) => g.id === opts.groupId)) groups = await api.groups(true);
  } catch {
    /* personal only */
  }
  const changed = () => opts.onChange?.();

  if (a && a.owner_id !== me.id) {
    renderReadOnly();
    return dlg;
  }

  const title = h('input', { name: 'title', required: true, maxlength: 200, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: 3, maxlength: 5000 });
  const start = h('input', { name: 'start', type: 'datetime-local', required: true });
  const end = h('input', { name: 'end', type: 'datetime-local', required: true });
  const privacy = h(
    'select',
    { name: 'privacy', id: 'privacy' },
    Object.entries(PRIVACY).map(([value, p]) => h('option', { value }, p.label)),
  );
  const calendar = h(
    'select',
    { name: 'group' },
    h('option', { value: '' }, 'Personal'),
    groups.map((g) => h('option', { value: g.id }, `Group: ${g.name}`)),
  );
  const fieldsByName = { title, description, start_time: start, end_time: end, privacy, group_id: calendar };

  function fill(x) {
    title.value = x.title;
    description.value = x.description || '';
    start.value = toLocalInput(new Date(x.start_time));
    end.value = toLocalInput(new Date(x.end_time));
    privacy.value = x.privacy;
    privacy.dispatchEvent(new Event('change')); // the explanation follows
    calendar.value = x.group_id || '';
    calendar.disabled = true;
  }

  if (a) fill(a);
  else {
    const s = opts.start || new Date(Math.ceil(Date.now() / 1800000) * 1800000);
    start.value = toLocalInput(s);
    end.value = toLocalInput(opts.end || new Date(s.getTime() + 3600000));
    calendar.value = opts.groupId || '';
  }
  // Keep the duration when the start moves. The duration is what the person set (or
  // the appointment had), not the distance to the start's previous value: typing a date
  // goes through invalid and far-off values (an emptied month, the years 2, 20, 202),
  // and each of those fires `change`.
  const span = () => {
    const s = fromLocalInput(start.value);
    const e = fromLocalInput(end.value);
    return s && e && e > s ? e - s : null;
  };
  let duration = span() ?? 3600000;
  start.addEventListener('change', () => {
    const ns = fromLocalInput(start.value);
    if (ns) end.value = toLocalInput(new Date(ns.getTime() + duration));
  });
  end.addEventListener('change', () => {
    duration = span() ?? duration;
  });

  const groupHint = h('small', { class: 'hint' });
  const updateGroupHint = () => {
    const g = groups.find((x) => x.id === calendar.value);
    groupHint.textContent = !g
      ? 'Only you take part.'
      : g.group_type === 'hierarchical'
        ? 'Members ranked at or below you are booked at once; senior members are invited.'
        : 'Every member is invited; it is confirmed once everyone accepts, and cancelled if anyone declines.';
  };
  calendar.addEventListener('change', updateGroupHint);
  updateGroupHint();

  // The explanation next to the privacy choice follows it.
  const privacyField = field('Privacy', privacy, PRIVACY.full.help);
  const privacyHint = privacyField.querySelector('.hint');
  privacyHint.setAttribute('aria-live', 'polite');
  const updatePrivacyHint = () => {
    privacyHint.textContent = `${(PRIVACY[privacy.value] || PRIVACY.full).help} You and the people taking part always see everything.`;
  };
  privacy.addEventListener('change', updatePrivacyHint);
  privacy.addEventListener('input', updatePrivacyHint);
  updatePrivacyHint();

  // What the form held when it opened (or was last reloaded): anything else is unsaved.
  const values = () => [title.value, description.value, start.value, end.value, privacy.value, calendar.value].join('\u0000');
  let opened = values();
  unsaved = () => values() !== opened;

  const save = h('button', { type: 'submit', class: 'button primary' }, a ? 'Save changes' : 'Create');
  const buttons = h('div', { class: 'form-buttons' }, save);
  const form = h(
    'form',
    { class: 'form', id: 'appointment-form' },
    field('Title', title),
    h('div', { class: 'row2' }, field('Starts', start), field('Ends', end)),
    field('Calendar', calendar),
    privacyField,
    field('Description', description),
    a ? participantsBlock(a) : null,
    buttons,
  );
  if (a) {
    buttons.prepend(
      confirmButton('Delete', 'Click again to delete', async () => {
        await busy(form, async () => {
          try {
            await api.del(`/api/appointments/${a.id}`, { headers: { 'If-Match': String(a.version) } });
            toast(`Deleted “${a.title}”.`, 'success');
            dlg.close();
            changed();
          } catch (err) {
            if (err.status === 412) await stale();
            else alert.show(api.message(err));
          }
        });
      }),
    );
  }
  calendar.parentElement.append(groupHint);
  body.append(form);
  title.focus();

  async function stale() {
    try {
      a = await api.get(`/api/appointments/${a.id}`);
      fill(a);
      opened = values();
      const old = form.querySelector('.participants');
      if (old) old.replaceWith(participantsBlock(a));
      alert.show(
        'Someone else changed this appointment while you were editing it. The latest version is now shown — check it and save again if you still want your change.',
        'warning',
      );
      changed();
    } catch (err) {
      alert.show(err.status === 404 ? 'This appointment was deleted in the meantime.' : api.message(err));
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.show(null);
    if (!form.reportValidity()) return;
    const s = fromLocalInput(start.value);
    const en = fromLocalInput(end.value);
    if (!s || !en || en <= s) {
      alert.show('The end must be after the start.');
      end.focus();
      return;
    }
    await busy(form, async () => {
      try {
        if (!a) {
          const created = await api.post('/api/appointments', {
            title: title.value.trim(),
            description: description.value,
            start_time: iso(s),
            end_time: iso(en),
            privacy: privacy.value,
            group_id: calendar.value || undefined,
          });
          toast(`Created “${created.title}”.`, 'success');
        } else {
          const patch = {};
          if (title.value.trim() !== a.title) patch.title = title.value.trim();
          if (description.value !== (a.description || '')) patch.description = description.value;
          if (iso(s) !== iso(a.start_time)) patch.start_time = iso(s);
          if (iso(en) !== iso(a.end_time)) patch.end_time = iso(en);
          if (privacy.value !== a.privacy) patch.privacy = privacy.value;
          if (!Object.keys(patch).length) {
            dlg.close();
            return;
          }
          await api.patch(`/api/appointments/${a.id}`, patch, { headers: { 'If-Match': String(a.version) } });
          toast('Saved.', 'success');
        }
        dlg.close();
        changed();
      } catch (err) {
        if (err.status === 409) {
          alert.show(await explainConflict(err.problem.conflicting_ids, 'This time is taken: it overlaps with'));
          start.focus();
        } else if (err.status === 412) {
          await stale();
        } else {
          alert.show(api.message(err));
          fieldsByName[err.problem?.field]?.focus();
        }
      }
    });
  });
  return dlg;

  function renderReadOnly() {
    const mine = myParticipation(a);
    const g = groups.find((x) => x.id === a.group_id);
    const info = h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'When'),
      h('dd', {}, fmtRange(a.start_time, a.end_time)),
      h('dt', {}, 'Organizer'),
      h('dd', {}, api.userName(a.owner_id)),
      g ? [h('dt', {}, 'Group'), h('dd', {}, g.name)] : null,
      h('dt', {}, 'Status'),
      h('dd', {}, statusLabel(a) || 'Confirmed'),
      a.description ? [h('dt', {}, 'Details'), h('dd', { class: 'prewrap' }, a.description)] : null,
      a.masked
        ? [h('dt', {}, 'Privacy'), h('dd', {}, 'The organizer keeps the details of this appointment to the people taking part; you see only that they are busy.')]
        : PRIVACY[a.privacy]
          ? [h('dt', {}, 'Privacy'), h('dd', {}, PRIVACY[a.privacy].help)]
          : null,
    );
    const title = h('h3', { class: 'editor-title' }, a.title);
    const answer = h('div', { class: 'form-buttons' });
    const respond = async (accept) => {
      alert.show(null);
      try {
        const r = await api.post(`/api/appointments/${a.id}/${accept ? 'accept' : 'reject'}`);
        a = r.appointment;
        toast(accept ? `You accepted “${a.title}”.` : `You declined “${a.title}”.`, 'success');
        changed();
        dlg.close();
      } catch (err) {
        if (err.status === 409) alert.show(await explainConflict(err.problem.conflicting_ids, 'Accepting would double-book you: it overlaps with'));
        else alert.show(api.message(err));
      }
    };
    if (mine && mine.status !== 'accepted' && mine.status !== 'auto') {
      answer.append(h('button', { type: 'button', class: 'button primary', dataset: { action: 'accept' }, onclick: () => respond(true) }, 'Accept'));
    }
    if (mine && mine.status !== 'declined') {
      answer.append(h('button', { type: 'button', class: 'button', dataset: { action: 'decline' }, onclick: () => respond(false) }, 'Decline'));
    }
    if (mine?.conflict && mine.status === 'pending') {
      alert.show('Accepting this would overlap with something already in your agenda.', 'warning');
    }
    body.append(title, info, participantsBlock(a), answer);
    (answer.querySelector('button') || dlg.dialog.querySelector('.icon-button')).focus();
  }
}

function participantsBlock(a) {
  if (!a.group_id || !a.participants?.length) return null;
  return h(
    'div',
    { class: 'participants' },
    h('h4', {}, 'Participants'),
    h(
      'ul',
      {},
      a.participants.map((p) =>
        h(
          'li',
          { dataset: { status: p.status } },
          h('span', { class: ['dot', `st-${p.status}`], 'aria-hidden': 'true' }),
          h('span', {}, api.userName(p.user_id)),
          h('span', { class: 'muted' }, ` — ${STATUS_WORDS[p.status] || p.status}${p.conflict ? ' (overlaps)' : ''}`),
        ),
      ),
    ),
  );
}

/** Default slot for "New appointment": the next half hour today, or 9:00 on `day`. */
export function defaultStart(day) {
  const now = new Date();
  if (!day || (day.toDateString() === now.toDateString())) return new Date(Math.ceil(now.getTime() / 1800000) * 1800000);
  const d = new Date(day);
  d.setHours(9, 0, 0, 0);
  return d;
}

