// Groups: the caller's pending invitations (join or decline), list and create
// (hierarchical or not), a group's page (members and ranks, invite by username or e-mail,
// the invited list with Withdraw, change ranks, remove, leave, rename, delete) and the
// group agenda (every member's busy time over a chosen range; what privacy hides from the
// caller reads "Busy").
//
// Membership is by consent: inviting someone (202) only records an invitation; they
// become a member when they join.

import * as api from './api.js';
import * as session from './session.js';
import { alertBox, busy, confirmButton, field, h, replace, toast } from './dom.js';
import { openEditor } from './editor.js';
import { addDays, dateKey, fmtAgo, fmtDay, fmtLongDay, fmtRange, fmtTimeRange, iso, minutesInto, parseDateKey, sameDay, startOfDay, startOfWeek } from './time.js';

const TYPE_WORDS = {
  hierarchical: 'Hierarchical',
  non_hierarchical: 'Non-hierarchical',
};

function typeBadge(t) {
  return h('span', { class: ['pill', t === 'hierarchical' ? 'violet' : 'teal'] }, TYPE_WORDS[t] || t);
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * One pending invitation with Join and Decline. `onAnswered(joined, group)` runs after a
 * successful answer (the invitations and groups are already reloaded by then).
 */
function invitationCard(inv, onAnswered) {
  const alert = alertBox();
  const hier = inv.group_type === 'hierarchical';
  const answer = async (join, button) => {
    alert.show(null);
    await busy(card, async () => {
      try {
        const r = await api.answerGroupInvitation(inv.group_id, join);
        toast(join ? `You joined “${r.name}”.` : `You declined the invitation to “${inv.group_name}”.`, 'success');
        onAnswered?.(join, join ? r : null);
      } catch (err) {
        alert.show(
          err.status === 404 ? 'This invitation is no longer open: it was withdrawn, answered elsewhere, or it lapsed.' : api.message(err),
        );
        button.focus();
      }
    });
  };
  const join = h('button', { type: 'button', class: 'button primary small', dataset: { action: 'join' } }, 'Join');
  const decline = h('button', { type: 'button', class: 'button small', dataset: { action: 'decline' } }, 'Decline');
  join.addEventListener('click', () => answer(true, join));
  decline.addEventListener('click', () => answer(false, decline));
  join.setAttribute('aria-label', `Join ${inv.group_name}`);
  decline.setAttribute('aria-label', `Decline the invitation to ${inv.group_name}`);
  const card = h(
    'li',
    { class: 'invite-card', dataset: { group: inv.group_id } },
    h('div', { class: 'group-card-head' }, h('h3', {}, inv.group_name), typeBadge(inv.group_type)),
    inv.group_description ? h('p', { class: 'muted clamp' }, inv.group_description) : null,
    h(
      'p',
      { class: 'invite-facts' },
      h('span', { class: 'invite-from' }, `Invited by ${inv.invited_by_display_name} (@${inv.invited_by_username})`),
      hier ? h('span', { class: 'invite-rank' }, `Offered rank ${inv.rank}`) : null,
      h('span', { class: 'invite-expiry', title: new Date(inv.expires_at).toLocaleString() }, `Answer by ${fmtLongDay(inv.expires_at)}`),
    ),
    alert,
    h('div', { class: 'form-buttons' }, decline, join),
  );
  return card;
}

/** The caller's pending invitations (a section that hides itself when there are none). */
function invitationsSection(onAnswered) {
  const list = h('ul', { class: 'invite-list' });
  const section = h(
    'section',
    { class: 'card invitations', id: 'group-invitations', hidden: true, 'aria-labelledby': 'group-invitations-title' },
    h('h2', { id: 'group-invitations-title' }, 'Invitations'),
    h('p', { class: 'muted small' }, 'You become a member only when you join. Until then the group sees nothing of your agenda, and you nothing of theirs.'),
    list,
  );
  section.show = (invitations) => {
    section.hidden = !invitations.length;
    // Keep a card that did not change (it may show an error message being read).
    const kept = new Map([...list.children].map((c) => [`${c.dataset.group}@${c.dataset.created}`, c]));
    replace(
      list,
      invitations.map((inv) => {
        const key = `${inv.group_id}@${inv.created_at}`;
        if (kept.has(key)) return kept.get(key);
        const card = invitationCard(inv, onAnswered);
        card.dataset.created = inv.created_at;
        return card;
      }),
    );
  };
  return section;
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

  const invitations = invitationsSection();

  replace(
    root,
    h(
      'section',
      { class: 'groups-page' },
      h('div', { class: 'page-head' }, h('h1', {}, 'Groups')),
      invitations,
      h('div', { class: 'two-col' }, h('div', {}, list), form),
    ),
  );

  async function loadInvitations() {
    try {
      invitations.show(await api.groupInvitations(true));
    } catch {
      /* the list of groups says what is wrong */
    }
  }

  async function load() {
    try {
      const groups = await api.groups(true);
      if (!groups.length) {
        replace(list, h('div', { class: 'empty card' }, h('p', {}, 'You are not in any group yet.'), h('p', { class: 'muted' }, 'Create one, then invite people by their username or e-mail.')));
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
              plural(g.member_count ?? g.members.length, 'member'),
              g.invited?.length ? ` · ${g.invited.length} invited` : '',
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
  const onInvitations = (e) => invitations.show(e.detail || []);
  document.addEventListener('agenda:groups', onGroups);
  document.addEventListener('agenda:invitations', onInvitations);
  load();
  loadInvitations();
  return () => {
    document.removeEventListener('agenda:groups', onGroups);
    document.removeEventListener('agenda:invitations', onInvitations);
  };
}

/** " Try again in about N minutes." from a 429's Retry-After, or nothing. */
function retryWords(err) {
  const after = Number(err.retryAfter);
  if (!after) return '';
  const min = Math.ceil(after / 60);
  return after < 90 ? ` Try again in ${plural(after, 'second')}.` : ` Try again in about ${plural(min, 'minute')}.`;
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
  let flash = null; // a message for the invite form, shown by the next render

  async function load() {
    let g;
    try {
      g = await api.get(`/api/groups/${id}`);
    } catch (err) {
      if (disposed) return;
      if (err.status === 404 || err.status === 403) {
        // Not a member: maybe invited.
        const inv = (await api.groupInvitations(true).catch(() => [])).find((i) => i.group_id === id);
        if (disposed) return;
        if (inv) {
          replace(
            page,
            h('p', { class: 'crumbs' }, h('a', { href: '#/groups' }, '← All groups')),
            h('div', { class: 'page-head' }, h('h1', { id: 'group-name' }, inv.group_name)),
            h('section', { class: 'card invitations' }, h('h2', {}, 'You are invited to this group'), h('ul', { class: 'invite-list' }, invitationCard(inv, (joined) => (joined ? load() : (location.hash = '#/groups'))))),
          );
          return;
        }
      }
      replace(
        page,
        h('p', { class: 'alert error' }, err.status === 404 || err.status === 403 ? 'This group does not exist or you are no longer a member.' : api.message(err)),
        h('p', {}, h('a', { href: '#/groups' }, '← All groups')),
      );
      return;
    }
    if (disposed) return;
    api.learn(g);
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

    // Pending invitations the caller may withdraw.
    const invitedRows = (g.invited || []).map((inv) => {
      const withdraw = h('button', { type: 'button', class: 'button small', dataset: { action: 'withdraw' }, 'aria-label': `Withdraw the invitation to ${inv.display_name}` }, 'Withdraw');
      withdraw.addEventListener('click', async () => {
        alert.show(null);
        withdraw.disabled = true;
        try {
          await api.del(`/api/groups/${g.id}/members/${inv.user_id}`);
          toast(`Withdrew the invitation to ${inv.display_name}.`, 'success');
        } catch (err) {
          alert.show(err.status === 404 ? `${inv.display_name} has answered the invitation in the meantime.` : api.message(err));
        }
        load();
      });
      return h(
        'tr',
        { dataset: { user: inv.user_id, username: inv.username } },
        h('td', {}, h('span', { class: 'member' }, avatar(inv), h('span', {}, h('strong', {}, inv.display_name), h('br'), h('span', { class: 'muted' }, `@${inv.username}`)))),
        hier ? h('td', { class: 'num' }, String(inv.rank)) : null,
        h('td', { class: 'muted small' }, `by ${inv.invited_by === me.id ? 'you' : inv.invited_by_display_name} · ${fmtAgo(inv.created_at)}`, h('br'), `answer by ${fmtDay(inv.expires_at)}`),
        h('td', { class: 'actions' }, withdraw),
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
      hier ? field('Rank offered', addRank, `Below your rank (${g.my_rank}).`) : null,
      h('div', { class: 'form-buttons' }, h('button', { type: 'submit', class: 'button primary' }, 'Send invitation')),
    );
    if (flash) {
      addAlert.show(flash, 'success');
      flash = null;
    }
    addForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      addAlert.show(null);
      if (!addForm.reportValidity()) return;
      await busy(addForm, async () => {
        const asked = who.value.trim();
        try {
          const r = await api.post(`/api/groups/${g.id}/members`, {
            username: asked,
            rank: hier ? Number(addRank.value) : undefined,
          });
          const inv = r.invitation;
          flash = `Invitation sent to ${inv.display_name} (@${inv.username}). They become a member once they accept it.`;
          toast(`Invitation sent to ${inv.display_name}.`, 'success');
          await load();
          document.getElementById('member-username')?.focus();
        } catch (err) {
          addAlert.show(
            err.status === 404
              ? `Nobody is registered as “${asked}”.`
              : err.status === 429
                ? `${api.message(err)}${retryWords(err)}`
                : api.message(err),
          );
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
        h('h2', {}, `Members (${g.member_count ?? g.members.length})`),
        g.members.length < (g.member_count ?? 0) ? h('p', { class: 'muted small' }, `Showing ${g.members.length} of ${g.member_count}.`) : null,
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
        (hier ? g.my_rank > 0 : creator)
          ? h(
              'div',
              { class: 'add-member' },
              h('h3', {}, 'Invite someone'),
              h('p', { class: 'muted small' }, 'They get an invitation and join the group only if they accept it.'),
              addForm,
            )
          : null,
      ),
      invitedRows.length
        ? h(
            'div',
            { class: 'card' },
            h('h2', {}, `Invited (${invitedRows.length})`),
            h('p', { class: 'muted small' }, 'Waiting for an answer. Invitations lapse after 30 days.'),
            h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                { class: 'table members', id: 'invited' },
                h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Invited'), hier ? h('th', { scope: 'col', class: 'num' }, 'Rank offered') : null, h('th', { scope: 'col' }, 'Sent'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
                h('tbody', {}, invitedRows),
              ),
            ),
          )
        : null,
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
        h('div', {}, heading, h('p', { class: 'muted' }, `${fmtDay(start)} – ${fmtDay(addDays(end, -1))} · busy time of every member; appointments whose details their owner keeps from you show as “Busy”.`)),
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
      d.truncated
        ? h('p', { class: 'alert warning', id: 'group-agenda-truncated', role: 'status' }, 'Too many appointments to show; pick a shorter range. Some of them are missing below.')
        : null,
      h('div', { class: 'legend muted' }, h('span', { class: 'seg-sample' }), ' busy ', h('span', { class: 'seg-sample masked' }), ' busy (details hidden)'),
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
