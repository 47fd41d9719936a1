// The cluster page: every store slot (role, term, applied index, lag, reachability) and
// the Raft membership, polled every 1.5 s from `GET /api/cluster/status`, with a log of
// leader changes so an operator can watch a failover happen.

import * as api from './api.js';
import { h, replace } from './dom.js';

const POLL_MS = 1500;

function slotNumber(s) {
  const m = /(\d+)$/.exec(s || '');
  return m ? Number(m[1]) : 1e9;
}

function num(v) {
  return v === null || v === undefined ? '—' : String(v);
}

export function clusterView(root) {
  const summary = h('div', { class: 'cluster-summary', id: 'cluster-summary' });
  const grid = h('div', { class: 'slot-grid', id: 'slots' });
  const members = h('div', { class: 'card' });
  const history = h('ol', { class: 'leader-log', id: 'leader-log' });
  const updated = h('p', { class: 'muted small', id: 'cluster-updated', role: 'status' }, 'Loading…');
  replace(
    root,
    h(
      'section',
      { class: 'cluster-page' },
      h(
        'div',
        { class: 'page-head' },
        h('div', {}, h('h1', {}, 'Cluster'), h('p', { class: 'muted' }, 'Seven slots, each an API front, a store and a discovery agent. The stores replicate one log with Raft; any API front serves any request.')),
      ),
      summary,
      updated,
      grid,
      h('div', { class: 'two-col' }, members, h('div', { class: 'card' }, h('h2', {}, 'Leader changes'), history)),
    ),
  );

  let lastLeader;
  const changes = [];
  let timer;
  let disposed = false;
  let failures = 0;

  function render(st) {
    const slotOf = (s) => s.slot || st.members.find((m) => m.addr === s.addr)?.slot || s.addr;
    const stores = [...st.stores].sort((a, b) => slotNumber(slotOf(a)) - slotNumber(slotOf(b)));
    const leader = stores.find((s) => s.role === 'leader' && s.reachable);
    const byRaft = new Map(stores.filter((s) => s.raft_id !== null && s.raft_id !== undefined).map((s) => [s.raft_id, s]));
    // A follower may still name a leader whose store does not answer (it just stopped):
    // name it by its slot from the membership, not as a bare Raft id.
    const leaderSlot =
      leader?.slot ||
      (st.leader_id != null
        ? byRaft.get(st.leader_id)?.slot || st.members.find((m) => m.raft_id === st.leader_id)?.slot || `raft ${st.leader_id}`
        : null);
    const term = Math.max(0, ...stores.map((s) => s.term || 0));
    const reachable = stores.filter((s) => s.reachable).length;
    const voters = st.members.filter((m) => m.voter).length;
    const quorum = Math.floor(voters / 2) + 1;

    const key = `${leaderSlot || 'none'}@${term}`;
    if (key !== lastLeader) {
      changes.unshift({ at: new Date(), slot: leaderSlot, term });
      if (changes.length > 20) changes.pop();
      lastLeader = key;
    }

    replace(
      summary,
      stat('Leader', leaderSlot || 'none', leaderSlot ? 'ok' : 'bad', { id: 'cluster-leader', dataset: { slot: leaderSlot || '' } }),
      stat('Term', String(term), '', { id: 'cluster-term' }),
      stat('Stores reachable', `${reachable} / ${stores.length}`, reachable >= quorum ? 'ok' : 'bad'),
      stat('Voters · quorum', `${voters} · ${quorum}`, ''),
      stat('Serving you', st.api_node, '', { id: 'cluster-api-node' }),
    );

    replace(
      grid,
      stores.map((s) => {
        const role = s.reachable ? s.role || 'unknown' : 'down';
        const member = st.members.find((m) => (s.raft_id != null ? m.raft_id === s.raft_id : m.addr === s.addr));
        const name = s.slot || member?.slot || s.addr;
        return h(
          'article',
          { class: ['slot-card', `role-${role}`], dataset: { slot: name, role, addr: s.addr } },
          h(
            'header',
            {},
            h('h2', {}, name),
            h('span', { class: ['pill', 'role', `role-${role}`] }, role === 'down' ? 'unreachable' : role),
          ),
          h(
            'dl',
            { class: 'slot-facts' },
            h('dt', {}, 'Term'),
            h('dd', {}, num(s.term)),
            h('dt', {}, 'Applied'),
            h('dd', {}, num(s.applied_index)),
            h('dt', {}, 'Log'),
            h('dd', {}, num(s.last_log_index)),
            h('dt', {}, 'Snapshot'),
            h('dd', {}, num(s.snapshot_index)),
            h('dt', {}, 'Lag'),
            h('dd', { class: s.lag > 0 ? 'warn' : '' }, num(s.lag)),
            h('dt', {}, 'Entry format'),
            h('dd', { title: 'newest log entry format it applies · newest applied' }, s.max_entry_format != null ? `${s.max_entry_format} · ${s.applied_entry_format}` : '—'),
          ),
          h(
            'ul',
            { class: 'health' },
            h('li', { class: s.reachable ? 'ok' : 'bad' }, h('span', { class: 'hdot' }), 'store ', s.reachable ? 'answering' : 'not answering'),
            member ? h('li', { class: member.voter ? 'ok' : 'warn' }, h('span', { class: 'hdot' }), member.voter ? 'voter' : 'learner') : h('li', { class: 'warn' }, h('span', { class: 'hdot' }), 'not a member'),
            s.slot && s.slot === st.api_node ? h('li', { class: 'ok' }, h('span', { class: 'hdot' }), 'API front (this one) serving') : null,
            s.halted ? h('li', { class: 'bad', title: s.halted }, h('span', { class: 'hdot' }), 'stopped applying the log: upgrade it') : null,
            s.alarm ? h('li', { class: 'bad', title: s.alarm }, h('span', { class: 'hdot' }), 'disk nearly full: takes no writes') : null,
            ...sidecarHealth(st, slotOf(s)),
          ),
          s.error ? h('p', { class: 'slot-error muted small', title: s.error }, s.error) : null,
          h('p', { class: 'mono small muted', title: `Raft id ${s.raft_id ?? '—'} · store at ${s.addr}` }, s.raft_id != null ? `raft ${s.raft_id}` : s.addr),
        );
      }),
    );

    replace(
      members,
      h('h2', {}, 'Raft membership'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'table' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Slot'), h('th', { scope: 'col' }, 'Raft id'), h('th', { scope: 'col' }, 'Kind'), h('th', { scope: 'col', class: 'num' }, 'Matched'))),
          h(
            'tbody',
            {},
            [...st.members]
              .sort((a, b) => slotNumber(a.slot) - slotNumber(b.slot))
              .map((m) =>
                h(
                  'tr',
                  {},
                  h('td', {}, m.slot),
                  h('td', { class: 'mono' }, String(m.raft_id)),
                  h('td', {}, m.voter ? 'voter' : 'learner'),
                  h('td', { class: 'num' }, num(m.matched_index)),
                ),
              ),
          ),
        ),
      ),
    );

    replace(
      history,
      changes.map((c) =>
        h('li', {}, h('time', { class: 'mono' }, c.at.toLocaleTimeString()), ' ', c.slot ? h('strong', {}, c.slot) : h('em', {}, 'no leader'), ` · term ${c.term}`),
      ),
    );
  }

  // The slot's discovery agent and API front as gossip reports them (absent when this
  // front does not follow an agent).
  function sidecarHealth(st, slot) {
    const entry = (st.slots || []).find((x) => x.slot === slot);
    if (!entry) return [];
    const agentTone = entry.discovery === 'alive' ? 'ok' : entry.discovery === 'suspect' ? 'warn' : 'bad';
    const items = [h('li', { class: agentTone }, h('span', { class: 'hdot' }), `agent ${entry.discovery}`)];
    if (slot !== st.api_node) {
      const apiUp = entry.api_ready && entry.discovery === 'alive';
      items.push(h('li', { class: apiUp ? 'ok' : 'bad' }, h('span', { class: 'hdot' }), apiUp ? 'API front ready' : 'API front not ready'));
    }
    return items;
  }

  function stat(label, value, tone, attrs = {}) {
    return h('div', { class: ['stat', tone], ...attrs }, h('span', { class: 'stat-label' }, label), h('span', { class: 'stat-value' }, value));
  }

  async function poll() {
    if (disposed) return;
    try {
      const st = await api.get('/api/cluster/status', { retries: 0 });
      if (disposed) return;
      failures = 0;
      render(st);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${POLL_MS / 1000} s`;
      updated.classList.remove('bad');
    } catch (err) {
      if (disposed) return;
      failures++;
      updated.textContent = `Could not refresh (${api.message(err)}) — retrying…`;
      updated.classList.add('bad');
    }
    if (!disposed) timer = setTimeout(poll, failures ? Math.min(5000, POLL_MS * failures) : POLL_MS);
  }
  poll();
  return () => {
    disposed = true;
    clearTimeout(timer);
  };
}
