// Groups: list and create (hierarchical or not), a group's page (members and ranks, add by
// username or e-mail, change ranks, remove, leave, rename, delete) and the group agenda
// (every member's busy time over a chosen range; masked appointments read "Busy").

import * as api from './api.js';
import * as session from './session.js';
import { alertBox, busy, confirmButton, field, h, replace, toast } from './dom.js';
import { openEditor } from './editor.js';
import { addDays, dateKey, fmtDay, fmtLongDay, fmtRange, fmtTimeRange, iso, minutesInto, parseDateKey, sameDay, startOfDay, startOfWeek } from './time.js';

const TYPE_WORDS = {
  hierarchical: 'Hierarchical',
  non_hierarchical: 'Non-hierarchical',
};

function typeBadge(t) {
  return h('span', { class: ['pill', t === 'hierarchical' ? 'violet' : 'teal'] }, TYPE_WORDS[t] || t);
}

export function groupsView(root) {
  const list = h('div', { class: 'group-cards', id: 'group-list' }, h('p', { class: 'muted' }, 'Loading…'));
  const alert = alertBox();
  const name = h('input', { name: 'name', required: true, maxlength: 100 });
  const description = h('textarea', { name: 'description', rows: 2, maxlength: 1000 });
  const typeH = h('input', { type: 'radio', name: 'group_type', value: 'hierarchical', id: 'gt-h', checked: true });
  const typeN = h('input', { type: 'radio', name: 'group_type', value: 'non_hierarchical', id: 'gt-n' });
  const rank = h('input', { name: 'creator_rank', type: 'number', min: 1, max: 1000000, value: 100 });
  const rankField = field('Your rank', rank, 'Higher is more senior. You can add members below your rank.');
  const syncType = () => (rankField.hidden = !typeH.checked);
  typeH.addEventListener('change', syncType);
  typeN.addEventListener('change', syncType);
  const form = h(
    'form',
    { class: 'form card', id: 'group-form' },
    h('h2', {}, 'New group'),
    alert,
    field('Name', name),
    h(
      'fieldset',
      { class: 'radios' },
      h('legend', {}, 'Kind'),
      h('label', { for: 'gt-h' }, typeH, h('span', {}, h('strong', {}, 'Hierarchical'), ' — members have ranks; seniors’ appointments book juniors automatically, juniors must invite seniors.')),
      h('label', { for: 'gt-n' }, typeN, h('span', {}, h('strong', {}, 'Non-hierarchical'), ' — everyone is equal; a group appointment needs everyone’s yes.')),
    ),
    rankField,
    field('Description', description),
    h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button primary' }, 'Create group')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.show(null);
    if (!form.reportValidity()) return;
    await busy(form, async () => {
      try {
        const hier = typeH.checked;
        const g = await api.post('/api/groups', {
          name: name.value.trim(),
          description: description.value.trim() || undefined,
          group_type: hier ? 'hierarchical' : 'non_hierarchical',
          creator_rank: hier ? Number(rank.value) : undefined,
        });
        await api.groups(true);
        toast(`Created the group “${g.name}”.`, 'success');
        location.hash = `#/groups/${g.id}`;
      } catch (err) {
        alert.show(api.message(err));
      }
    });
  });

  replace(
    root,
    h(
      'section',
      { class: 'groups-page' },
      h('div', { class: 'page-head' }, h('h1', {}, 'Groups')),
      h('div', { class: 'two-col' }, h('div', {}, list), form),
    ),
  );

  async function load() {
    try {
      const groups = await api.groups(true);
      if (!groups.length) {
        replace(list, h('div', { class: 'empty card' }, h('p', {}, 'You are not in any group yet.'), h('p', { class: 'muted' }, 'Create one, then add people by their username or e-mail.')));
        return;
      }
      replace(
        list,
        groups.map((g) =>
          h(
            'a',
            { class: 'group-card card', href: `#/groups/${g.id}`, dataset: { id: g.id } },
            h('div', { class: 'group-card-head' }, h('h2', {}, g.name), typeBadge(g.group_type)),
            g.description ? h('p', { class: 'muted clamp' }, g.description) : null,
            h(
              'p',
              { class: 'group-meta' },
              `${g.members.length} member${g.members.length === 1 ? '' : 's'}`,
              g.group_type === 'hierarchical' ? ` · your rank ${g.my_rank}` : '',
              g.creator_id === session.user().id ? ' · you manage it' : '',
            ),
            h('div', { class: 'avatars' }, g.members.slice(0, 6).map((m) => avatar(m))),
          ),
        ),
      );
    } catch (err) {
      replace(list, h('p', { class: 'alert error' }, api.message(err)));
    }
  }
  const onGroups = () => load();
  document.addEventListener('agenda:groups', onGroups);
  load();
  return () => document.removeEventListener('agenda:groups', onGroups);
}

function initials(m) {
  const n = (m.display_name || m.username || '?').trim();
  const parts = n.split(/\s+/);
  return ((parts[0]?.[0] || '') + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

function hue(id) {
  let x = 0;
  for (const c of id) x = (x * 31 + c.charCodeAt(0)) % 360;
  return x;
}

function avatar(m) {
  const a = h('span', { class: 'avatar', title: m.display_name || m.username, 'aria-hidden': 'true' }, initials(m));
  a.style.setProperty('--hue', String(hue(m.user_id)));
  return a;
}

export function groupView(root, { id }) {
  const me = session.user();
  const page = h('section', { class: 'group-page' }, h('p', { class: 'muted' }, 'Loading…'));
  replace(root, page);
  let disposed = false;

  async function load() {
    let g;
    try {
      g = await api.get(`/api/groups/${id}`);
    } catch (err) {
      if (disposed) return;
      replace(
        page,
        h('p', { class: 'alert error' }, err.status === 404 || err.status === 403 ? 'This group does not exist or you are no longer a member.' : api.message(err)),
        h('p', {}, h('a', { href: '#/groups' }, '← All groups')),
      );
      return;
    }
    if (disposed) return;
    api.groups(true).catch(() => {});
    render(g);
  }

  function render(g) {
    const hier = g.group_type === 'hierarchical';
    const creator = g.creator_id === me.id;
    const alert = alertBox();

    const canManage = (m) => m.user_id !== me.id && (hier ? m.rank < g.my_rank : creator);
    const rows = g.members.map((m) => {
      const actions = [];
      if (hier && canManage(m)) {
        const input = h('input', { type: 'number', min: 0, max: Math.max(0, g.my_rank - 1), value: m.rank, class: 'rank-input', 'aria-label': `New rank for ${m.display_name}` });
        const save = h('button', { type: 'button', class: 'button small' }, 'Set rank');
        save.addEventListener('click', async () => {
          alert.show(null);
          try {
            const ng = await api.put(`/api/groups/${g.id}/members/${m.user_id}`, { rank: Number(input.value) });
            toast(`${m.display_name} now has rank ${input.value}.`, 'success');
            render(ng);
          } catch (err) {
            alert.show(api.message(err));
          }
        });
        actions.push(h('span', { class: 'rank-edit' }, input, save));
      }
      if (canManage(m)) {
        actions.push(
          confirmButton('Remove', 'Confirm remove', async () => {
            alert.show(null);
            try {
              await api.del(`/api/groups/${g.id}/members/${m.user_id}`);
              toast(`Removed ${m.display_name}.`, 'success');
              load();
            } catch (err) {
              alert.show(api.message(err));
            }
          }, 'danger small'),
        );
      }
      return h(
        'tr',
        { dataset: { user: m.user_id, username: m.username } },
        h('td', {}, h('span', { class: 'member' }, avatar(m), h('span', {}, h('strong', {}, m.display_name), h('br'), h('span', { class: 'muted' }, `@${m.username}`)))),
        hier ? h('td', { class: 'num' }, String(m.rank)) : null,
        h('td', {}, m.user_id === g.creator_id ? h('span', { class: 'pill violet' }, 'Creator') : null, m.user_id === me.id ? h('span', { class: 'pill' }, 'You') : null),
        h('td', { class: 'actions' }, actions),
      );
    });

    const addAlert = alertBox();
    const who = h('input', { name: 'member', required: true, maxlength: 254, autocomplete: 'off', id: 'member-username' });
    const addRank = h('input', { name: 'rank', type: 'number', min: 0, max: Math.max(0, g.my_rank - 1), value: 0, id: 'member-rank' });
    const addForm = h(
      'form',
      { class: 'form inline-form', id: 'add-member-form' },
      addAlert,
      field('Username or e-mail', who),
      hier ? field('Rank', addRank, `Below your rank (${g.my_rank}).`) : null,
      h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button primary' }, 'Add member')),
    );
    addForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      addAlert.show(null);
      if (!addForm.reportValidity()) return;
      await busy(addForm, async () => {
        try {
          const ng = await api.post(`/api/groups/${g.id}/members`, {
            username: who.value.trim(),
            rank: hier ? Number(addRank.value) : undefined,
          });
          toast(`Added ${who.value.trim()}.`, 'success');
          render(ng);
          api.groups(true).catch(() => {});
          document.getElementById('member-username')?.focus();
        } catch (err) {
          addAlert.show(err.status === 404 ? `Nobody is registered as “${who.value.trim()}”.` : api.message(err));
        }
      });
    });

    const settings = [];
    if (creator) {
      const rename = h('input', { value: g.name, maxlength: 100, required: true, name: 'name' });
      const desc = h('textarea', { rows: 2, maxlength: 1000, name: 'description' });
      desc.value = g.description || '';
      const f = h('form', { class: 'form' }, field('Name', rename), field('Description', desc), h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button' }, 'Save')));
      f.addEventListener('submit', async (e) => {
        e.preventDefault();
        alert.show(null);
        try {
          const ng = await api.patch(`/api/groups/${g.id}`, { name: rename.value.trim(), description: desc.value.trim() });
          toast('Group updated.', 'success');
          render(ng);
        } catch (err) {
          alert.show(api.message(err));
        }
      });
      settings.push(h('details', { class: 'card settings' }, h('summary', {}, 'Rename or describe'), f));
    }

    const leave = confirmButton('Leave group', 'Click again to leave', async () => {
      try {
        await api.del(`/api/groups/${g.id}/members/${me.id}`);
        await api.groups(true);
        toast(`You left “${g.name}”.`, 'success');
        location.hash = '#/groups';
      } catch (err) {
        alert.show(api.message(err));
      }
    }, 'ghost');
    const del = creator
      ? confirmButton('Delete group', 'Click again: this cancels its appointments', async () => {
          try {
            await api.del(`/api/groups/${g.id}`);
            await api.groups(true);
            toast(`Deleted “${g.name}”.`, 'success');
            location.hash = '#/groups';
          } catch (err) {
            alert.show(api.message(err));
          }
        })
      : null;

    replace(
      page,
      h('p', { class: 'crumbs' }, h('a', { href: '#/groups' }, '← All groups')),
      h(
        'div',
        { class: 'page-head' },
        h('div', {}, h('h1', { id: 'group-name' }, g.name), h('p', { class: 'muted' }, typeBadge(g.group_type), hier ? ` Your rank: ${g.my_rank}` : '')),
        h(
          'div',
          { class: 'head-actions' },
          h('a', { class: 'button', href: `#/groups/${g.id}/agenda`, id: 'group-agenda-link' }, 'Group agenda'),
          h('button', { type: 'button', class: 'button primary', id: 'group-new-appointment', onclick: () => openEditor({ groupId: g.id, start: new Date(Math.ceil(Date.now() / 1800000) * 1800000) }) }, '+ Group appointment'),
        ),
      ),
      g.description ? h('p', { class: 'prewrap' }, g.description) : null,
      alert,
      h(
        'div',
        { class: 'card' },
        h('h2', {}, `Members (${g.members.length})`),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'table members', id: 'members' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Member'), hier ? h('th', { scope: 'col', class: 'num' }, 'Rank') : null, h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Role')), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
            h('tbody', {}, rows),
          ),
        ),
        (hier ? g.my_rank > 0 : creator) ? h('div', { class: 'add-member' }, h('h3', {}, 'Add a member'), addForm) : null,
      ),
      settings,
      h('div', { class: 'danger-zone' }, leave, del),
    );
  }

  const onGroups = (e) => {
    if (!e.detail?.payload?.group_id || e.detail.payload.group_id === id) load();
  };
  document.addEventListener('agenda:groups', onGroups);
  load();
  return () => {
    disposed = true;
    document.removeEventListener('agenda:groups', onGroups);
  };
}

export function groupAgendaView(root, { id, date, days }) {
  const start = startOfDay(parseDateKey(date) || startOfWeek(new Date()));
  const span = Math.max(1, Math.min(31, Number(days) || 7));
  const end = addDays(start, span);
  const go = (s, n = span) => (location.hash = `#/groups/${id}/agenda/${dateKey(s)}/${n}`);

  const from = h('input', { type: 'date', id: 'ga-from', value: dateKey(start), required: true });
  const len = h(
    'select',
    { id: 'ga-days' },
    [1, 3, 7, 14, 31].map((n) => h('option', { value: n, selected: n === span }, n === 1 ? '1 day' : `${n} days`)),
  );
  len.value = String(span);
  const form = h(
    'form',
    { class: 'form range-form' },
    field('From', from),
    field('Length', len),
    h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button' }, 'Show')),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const d = parseDateKey(from.value);
    if (d) go(d, Number(len.value));
  });
  const body = h('div', { class: 'ga-body', id: 'group-agenda' }, h('p', { class: 'muted' }, 'Loading…'));
  const heading = h('h1', {}, 'Group agenda');
  replace(
    root,
    h(
      'section',
      { class: 'ga-page' },
      h('p', { class: 'crumbs' }, h('a', { href: `#/groups/${id}` }, '← Back to the group')),
      h(
        'div',
        { class: 'page-head' },
        h('div', {}, heading, h('p', { class: 'muted' }, `${fmtDay(start)} – ${fmtDay(addDays(end, -1))} · busy time of every member; private appointments show as “Busy”.`)),
        h(
          'div',
          { class: 'cal-nav' },
          h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Earlier', onclick: () => go(addDays(start, -span)) }, '‹'),
          h('button', { type: 'button', class: 'button small', onclick: () => go(startOfWeek(new Date()), 7) }, 'This week'),
          h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Later', onclick: () => go(addDays(start, span)) }, '›'),
        ),
      ),
      form,
      body,
    ),
  );

  let disposed = false;
  async function load() {
    try {
      const d = await api.get(`/api/groups/${id}/agenda${api.qs({ start: iso(start), end: iso(end) })}`);
      if (disposed) return;
      heading.textContent = `${d.group.name}: group agenda`;
      render(d);
    } catch (err) {
      if (!disposed) replace(body, h('p', { class: 'alert error' }, api.message(err)));
    }
  }

  function render(d) {
    const dayList = [...Array(span)].map((_, i) => addDays(start, i));
    const today = new Date();
    const compact = span > 7;
    const table = h(
      'table',
      { class: ['table', 'ga-table', compact && 'compact'] },
      h(
        'thead',
        {},
        h('tr', {}, h('th', { scope: 'col' }, 'Member'), dayList.map((day) => h('th', { scope: 'col', class: sameDay(day, today) && 'today' }, fmtDay(day)))),
      ),
      h(
        'tbody',
        {},
        d.members.map((mb) =>
          h(
            'tr',
            { dataset: { user: mb.member.user_id } },
            h('th', { scope: 'row' }, h('span', { class: 'member' }, avatar(mb.member), h('span', {}, mb.member.display_name, d.group.group_type === 'hierarchical' ? h('small', { class: 'muted' }, ` · rank ${mb.member.rank}`) : null))),
            dayList.map((day) => {
              const items = mb.busy.filter((a) => new Date(a.start_time) < addDays(day, 1) && new Date(a.end_time) > day);
              const bar = h('div', { class: 'busy-bar', 'aria-hidden': 'true' });
              for (const a of items) {
                const s = minutesInto(day, a.start_time);
                const e = minutesInto(day, a.end_time);
                const seg = h('span', { class: ['seg', a.masked && 'masked'] });
                seg.style.setProperty('left', `${(s / 1440) * 100}%`);
                seg.style.setProperty('width', `${Math.max(((e - s) / 1440) * 100, 1)}%`);
                bar.append(seg);
              }
              return h(
                'td',
                { class: sameDay(day, today) && 'today' },
                bar,
                items.length
                  ? h(
                      'ul',
                      { class: 'busy-list' },
                      items.map((a) =>
                        h(
                          'li',
                          { class: a.masked ? 'masked' : '', dataset: { id: a.id, masked: String(a.masked) }, title: fmtRange(a.start_time, a.end_time) },
                          h('span', { class: 'busy-time' }, fmtTimeRange(a.start_time, a.end_time)),
                          ' ',
                          h('span', { class: 'busy-title' }, a.masked ? 'Busy' : a.title),
                        ),
                      ),
                    )
                  : h('span', { class: 'free muted' }, 'Free'),
              );
            }),
          ),
        ),
      ),
    );
    replace(
      body,
      h('div', { class: 'legend muted' }, h('span', { class: 'seg-sample' }), ' busy ', h('span', { class: 'seg-sample masked' }), ' busy (private)'),
      h('div', { class: 'table-wrap' }, table),
      h('p', { class: 'muted small' }, `Times in your time zone. Bars span 00:00–24:00 of each day. ${fmtLongDay(start)} to ${fmtLongDay(addDays(end, -1))}.`),
    );
  }

  const onChanged = () => load();
  document.addEventListener('agenda:changed', onChanged);
  load();
  return () => {
    disposed = true;
    document.removeEventListener('agenda:changed', onChanged);
  };
}
