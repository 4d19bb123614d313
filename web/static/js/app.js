// The musubi web UI: sign-in, hash-routed views (overlay map, virtual
// clusters, timetable with the reservation form, jobs), and polling of the
// peer's API while a view is shown.

import { ApiError, call, clearToken, onUnauthorized, seg, setToken, token } from './api.js';
import { renderGantt } from './gantt.js';
import { formatBytes, formatCost, natural, reserveRequest, toLocalInput } from './layout.js';
import { renderMap } from './map.js';
import { fill, h } from './svg.js';

const POLL_MS = 2000;
const VIEWS = ['overlay', 'vcs', 'timetable', 'jobs'];

const $ = (sel) => document.querySelector(sel);
const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const shortFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

const state = {
  view: 'overlay',
  vc: '', // the VC selected for nodes and jobs
  timer: 0,
  gen: 0, // bumps on every navigation, so a stale refresh does not render
  last: new Map(), // what each part last rendered (skip identical redraws)
  vcs: [],
  signedIn: false,
};

// ---- sign-in -------------------------------------------------------------

function showLogin(message) {
  state.signedIn = false;
  stopPolling();
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#peer').textContent = '';
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
  const input = $('#token');
  input.value = '';
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
  input.focus();
}

onUnauthorized((err) => {
  clearToken();
  showLogin(`The peer did not accept the token (${err.message}). Sign in with a valid one: a site administrator makes tokens with "musubi peer token".`);
});

async function signIn(ev) {
  ev.preventDefault();
  const tok = $('#token').value.trim();
  if (!tok) {
    $('#login-error').textContent = 'Enter a token.';
    return;
  }
  const btn = ev.submitter || $('#login-form button');
  btn.disabled = true;
  try {
    // Check the token before keeping it; a 401 shows the prompt again.
    await call('GET', '/status', undefined, tok);
    setToken(tok);
    $('#login').hidden = true;
    start();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) $('#login-error').textContent = e.message;
  } finally {
    btn.disabled = false;
  }
}

function signOut() {
  clearToken();
  state.last.clear();
  showLogin('Signed out.');
}

function start() {
  state.signedIn = true;
  $('#nav').hidden = false;
  $('#signout').hidden = false;
  route();
}

// ---- routing and polling -------------------------------------------------

function parseHash() {
  const [view, arg] = decodeURIComponent(location.hash.replace(/^#/, '')).split('/');
  return { view: VIEWS.includes(view) ? view : 'overlay', arg: arg || '' };
}

function route() {
  if (!state.signedIn) return;
  const { view, arg } = parseHash();
  const changed = view !== state.view;
  state.view = view;
  if (arg) state.vc = arg;
  for (const v of document.querySelectorAll('.view')) v.hidden = v.dataset.view !== view;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${$(`#view-${view} h1`).textContent} · musubi`;
  if (changed) $(`#view-${view} h1`).setAttribute('tabindex', '-1');
  state.gen++;
  state.last.clear();
  poll();
}

function stopPolling() {
  clearTimeout(state.timer);
  state.timer = 0;
  state.gen++;
}

async function poll() {
  clearTimeout(state.timer);
  const gen = state.gen;
  try {
    await refresh(gen);
    if (gen === state.gen) notice('');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return; // the login prompt is up
    if (gen === state.gen) notice(`${e.message}${e.hint ? ` — ${e.hint}` : ''}. Retrying…`, true);
  }
  if (gen === state.gen && state.signedIn) state.timer = setTimeout(poll, document.hidden ? POLL_MS * 5 : POLL_MS);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.signedIn) poll();
});

/** Renders only when the data changed (keeps focus and selection). */
function changed(key, data) {
  const j = JSON.stringify(data);
  if (state.last.get(key) === j) return false;
  state.last.set(key, j);
  return true;
}

async function refresh(gen) {
  const jobs = [call('GET', '/status')];
  switch (state.view) {
    case 'overlay':
      jobs.push(call('GET', '/topology'));
      break;
    case 'vcs':
    case 'timetable':
    case 'jobs':
      jobs.push(call('GET', '/vcs'));
      break;
  }
  const [status, data] = await Promise.all(jobs);
  if (gen !== state.gen) return;
  renderStatus(status);
  switch (state.view) {
    case 'overlay':
      if (changed('topology', data)) renderOverlay(data);
      break;
    case 'vcs':
      state.vcs = data.vcs || [];
      if (changed('vcs', state.vcs)) renderVCs(state.vcs);
      await refreshNodes(gen);
      break;
    case 'timetable':
      state.vcs = data.vcs || [];
      drawGantt();
      break;
    case 'jobs':
      state.vcs = data.vcs || [];
      if (changed('jobs-select', state.vcs.map((v) => v.vc))) renderJobsSelect();
      await refreshJobs(gen);
      break;
  }
}

function notice(text, isError) {
  const n = $('#notice');
  n.textContent = text;
  n.classList.toggle('bad', !!isError);
}

// ---- header ----------------------------------------------------------------

function renderStatus(st) {
  const p = st.peer || {};
  const counts = Object.entries(st.vcs || {})
    .sort(([a], [b]) => natural(a, b))
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  const parts = [
    h('span', {}, ['peer ', h('strong', { text: p.site || '?' })]),
    h('span', { text: p.version || '' }),
    h('span', { class: p.ready ? 'badge ok' : 'badge warn', title: (p.problems || []).join('; '), text: p.ready ? 'ready' : 'not ready' }),
    h('span', { text: `VCs: ${counts || 'none'}` }),
  ];
  if (changed('status', [p.site, p.version, p.ready, p.problems, counts])) fill($('#peer'), parts);
}

// ---- overlay -------------------------------------------------------------

function renderOverlay(topo) {
  renderMap($('#map'), topo);
  const sites = [...(topo.sites || [])].sort((a, b) => natural(a.name, b.name));
  fill(
    $('#sites-table tbody'),
    sites.length
      ? sites.map((s) =>
          h('tr', { 'data-site': s.name }, [
            h('th', { scope: 'row', text: s.name }),
            h('td', {}, [badge(s.live ? 'live' : 'offline')]),
            h('td', { text: s.gateway || '—' }),
            h('td', { text: (s.peer && s.peer.version) || '—' }),
            h('td', { text: s.joined && !s.joined.startsWith('0001') ? dateFmt.format(new Date(s.joined)) : '—' }),
          ]),
        )
      : [emptyRow(5, 'No sites.')],
  );
  const links = topo.links || [];
  fill(
    $('#links-table tbody'),
    links.length
      ? links.map((l) =>
          h('tr', { 'data-link': `${l.a}~${l.b}` }, [
            h('th', { scope: 'row', text: `${l.a} – ${l.b}` }),
            h('td', {}, [badge(l.up ? 'up' : 'down')]),
            h('td', { text: formatCost(l.cost_us) }),
            h('td', { text: l.measured ? `measured${l.updated ? `, ${shortFmt.format(new Date(l.updated))}` : ''}` : 'assumed' }),
          ]),
        )
      : [emptyRow(4, 'No links: the federation has fewer than two sites.')],
  );
}

function badge(word) {
  const cls = { live: 'ok', up: 'ok', ready: 'ok', running: 'ok', r: 'ok', offline: 'bad', down: 'bad', failed: 'bad', error: 'bad', Eqw: 'bad' }[word] || 'neutral';
  return h('span', { class: `badge ${cls}`, text: word });
}

function emptyRow(cols, text) {
  return h('tr', {}, [h('td', { colspan: cols, class: 'empty', text })]);
}

// ---- virtual clusters ----------------------------------------------------

function sitesOf(vc) {
  return [...new Set(((vc.placement && vc.placement.nodes) || []).map((n) => n.site))].sort(natural);
}

function windowText(w) {
  if (!w) return '';
  return `${shortFmt.format(new Date(w.start))} – ${shortFmt.format(new Date(w.end))}`;
}

function renderVCs(vcs) {
  const sorted = [...vcs].sort((a, b) => natural(a.vc, b.vc));
  fill(
    $('#vc-table tbody'),
    sorted.length
      ? sorted.map((v) =>
          h('tr', { 'data-vc': v.vc, class: v.vc === state.vc ? 'selected' : '' }, [
            h('th', { scope: 'row' }, [h('a', { href: `#vcs/${encodeURIComponent(v.vc)}`, text: v.vc, 'aria-label': `${v.vc}: show its nodes` })]),
            h('td', { class: 'phase' }, [badge(v.phase)]),
            h('td', { text: `${v.nodes_ready} / ${v.nodes_total}` }),
            h('td', { text: sitesOf(v).join(', ') }),
            h('td', { text: windowText(v.window) }),
            h('td', { text: v.owner || '—' }),
            h('td', { text: (v.placement && v.placement.vlan) || '—' }),
            h('td', { class: 'row-actions' }, [
              h('div', {}, [
                h('a', { href: `#jobs/${encodeURIComponent(v.vc)}`, text: 'Jobs', 'aria-label': `jobs of ${v.vc}` }),
                v.phase === 'cancelled' || v.phase === 'ended'
                  ? null
                  : h('button', { type: 'button', class: 'quiet danger', text: 'Cancel', 'aria-label': `cancel ${v.vc}`, onclick: () => cancelVC(v.vc) }),
              ]),
            ]),
          ]),
        )
      : [emptyRow(8, 'No reservations. Reserve one on the Timetable page.')],
  );
}

async function refreshNodes(gen) {
  const detail = $('#vc-detail');
  const vc = state.vcs.find((v) => v.vc === state.vc);
  if (!vc) {
    detail.hidden = true;
    return;
  }
  let nodes;
  try {
    nodes = await call('GET', `/vcs/${seg(vc.vc)}/nodes`);
  } catch (e) {
    if (gen !== state.gen || (e instanceof ApiError && e.status === 401)) throw e;
    detail.hidden = false;
    $('#nodes-caption').textContent = `Nodes of ${vc.vc}`;
    fill($('#nodes-table tbody'), [emptyRow(8, `${e.message}${e.hint ? ` — ${e.hint}` : ''}`)]);
    return;
  }
  if (gen !== state.gen || !changed('nodes', nodes)) return;
  detail.hidden = false;
  $('#nodes-caption').textContent = `Nodes of ${vc.vc} (VLAN ${(vc.placement && vc.placement.vlan) || '?'}, ${vc.placement ? vc.placement.memory_mib : '?'} MiB, ${
    vc.placement ? vc.placement.vcpus : '?'
  } vCPUs${vc.placement && vc.placement.disk_bytes ? `, ${formatBytes(vc.placement.disk_bytes)} disk` : ''} per node)`;
  const list = nodes.nodes || [];
  fill(
    $('#nodes-table tbody'),
    list.length
      ? list.map((n) =>
          h('tr', { 'data-node': n.name }, [
            h('th', { scope: 'row', text: n.name + (n.frontend ? ' (frontend)' : '') }),
            h('td', {}, [badge(n.state)]),
            h('td', { text: n.site || '—' }),
            h('td', { text: n.host || '—' }),
            h('td', { text: n.ip || '—' }),
            h('td', { class: 'mono', text: n.mac || '—' }),
            h('td', { text: n.vlan || '—' }),
            h('td', { text: n.storage || '—' }),
          ]),
        )
      : [emptyRow(8, 'No nodes.')],
  );
}

async function cancelVC(vc) {
  if (!window.confirm(`Cancel virtual cluster ${vc}? Its nodes are destroyed and its resources freed.`)) return;
  try {
    await call('DELETE', `/vcs/${seg(vc)}`);
    notice(`Cancelled ${vc}.`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    notice(`Cannot cancel ${vc}: ${e.message}${e.hint ? ` — ${e.hint}` : ''}`, true);
    return;
  }
  state.last.clear();
  poll();
}

// ---- timetable -------------------------------------------------------------

function ganttOptions() {
  const range = Number($('#gantt-range').value) || 864e5;
  const mode = (document.querySelector('#gantt-controls input[name=mode]:checked') || {}).value || 'host';
  const now = Date.now();
  const from = now - range / 8;
  return { mode, from, to: from + range, now };
}

function drawGantt() {
  renderGantt($('#gantt'), state.vcs, ganttOptions());
}

/** Widens the timetable's period, if needed, until instant t is in it. */
function showInRange(t) {
  const sel = $('#gantt-range');
  if (!(t > ganttOptions().to)) return;
  const now = Date.now();
  const opts = [...sel.options].map((o) => Number(o.value)).sort((a, b) => a - b);
  sel.value = String(opts.find((r) => now + (7 * r) / 8 >= t) || opts[opts.length - 1]);
  drawGantt();
}

function fillNow() {
  const f = $('#reserve-form');
  const start = new Date();
  start.setSeconds(0, 0);
  f.elements.start.value = toLocalInput(start);
  f.elements.end.value = toLocalInput(new Date(start.getTime() + 2 * 3600e3));
}

function formValues(f) {
  const v = Object.fromEntries(new FormData(f).entries());
  v.frontend = f.elements.frontend.checked;
  return v;
}

async function reserve(ev) {
  ev.preventDefault();
  const f = ev.target;
  const errBox = $('#reserve-error');
  const ok = $('#reserve-ok');
  errBox.hidden = true;
  ok.textContent = '';
  for (const el of f.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  let req;
  try {
    req = reserveRequest(formValues(f));
  } catch (e) {
    showReserveError(e.message);
    const field = f.elements[(e.message.match(/^(VC name|nodes|memory|vCPUs|disk|window start|window end)/) || [])[1]];
    if (field && field.setAttribute) field.setAttribute('aria-invalid', 'true');
    return;
  }
  const btn = $('#reserve-submit');
  btn.disabled = true;
  btn.textContent = 'Reserving…';
  try {
    const vc = await call('POST', '/vcs', req);
    const sites = sitesOf(vc);
    ok.textContent = `Reserved ${vc.vc}: ${vc.nodes_total} node${vc.nodes_total === 1 ? '' : 's'} on ${sites.join(', ') || 'no site'}, VLAN ${
      (vc.placement && vc.placement.vlan) || '?'
    }, ${windowText(vc.window)} (${vc.phase}).`;
    state.vc = vc.vc;
    f.elements.vc.value = '';
    showInRange(Date.parse(vc.window.end));
    state.last.clear();
    poll();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    showReserveError(e.message, e);
  } finally {
    btn.disabled = false;
    btn.textContent = 'Reserve';
  }
}

function showReserveError(message, e) {
  const box = $('#reserve-error');
  const refused = e && e.status === 409 && e.refusal;
  const what = refused ? message.replace(/^refused:\s*/i, '') : message;
  const parts = [h('p', { class: 'title' }, [h('strong', { text: refused ? 'Refused: ' : 'Not reserved: ' }), what])];
  if (e && e.hint) parts.push(h('p', { text: e.hint }));
  const r = e && e.refusal;
  if (r) {
    const facts = [['binding constraint', r.constraint]];
    if (r.resource) facts.push(['closest to fitting', `${r.resource}${r.site ? ` (site ${r.site})` : ''}`]);
    else if (r.site) facts.push(['site', r.site]);
    if (r.constraint === 'memory') facts.push(['free / needed', `${r.free} / ${r.needed} MiB`]);
    else if (r.constraint === 'storage') facts.push(['free / needed', `${formatBytes(r.free)} / ${formatBytes(r.needed)}`]);
    else if (r.constraint === 'vcpu') facts.push(['free / needed', `${r.free} / ${r.needed} vCPUs`]);
    facts.push(['nodes placed before it bound', `${r.placed} of ${r.nodes}`]);
    parts.push(h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: String(v) })])));
    if (r.earliest) {
      parts.push(
        h('p', {}, [
          `Earliest window that fits: ${windowText(r.earliest)}. `,
          h('button', {
            type: 'button',
            class: 'quiet',
            text: 'Use this window',
            onclick: () => {
              const f = $('#reserve-form');
              f.elements.start.value = toLocalInput(new Date(r.earliest.start));
              f.elements.end.value = toLocalInput(new Date(r.earliest.end));
              f.elements.start.focus();
            },
          }),
        ]),
      );
    }
  }
  fill(box, parts);
  box.hidden = false;
}

// ---- jobs --------------------------------------------------------------------

function renderJobsSelect() {
  const sel = $('#jobs-vc');
  const names = state.vcs.map((v) => v.vc).sort(natural);
  if (!state.vc && names.length) state.vc = names[0];
  fill(sel, names.length ? names.map((n) => h('option', { value: n, text: n, selected: n === state.vc })) : [h('option', { value: '', text: 'no virtual clusters' })]);
  sel.value = state.vc;
}

async function refreshJobs(gen) {
  const vc = state.vc;
  if (!vc) {
    $('#jobs-caption').textContent = 'Active jobs';
    fill($('#jobs-table tbody'), [emptyRow(8, 'No virtual cluster selected.')]);
    return;
  }
  let jobs;
  try {
    jobs = await call('GET', `/vcs/${seg(vc)}/jobs`);
  } catch (e) {
    if (gen !== state.gen || (e instanceof ApiError && e.status === 401)) throw e;
    state.last.delete('jobs');
    $('#jobs-caption').textContent = `Active jobs of ${vc}`;
    fill($('#jobs-table tbody'), [emptyRow(8, `${e.message}${e.hint ? ` — ${e.hint}` : ''}`)]);
    return;
  }
  if (gen !== state.gen || !changed('jobs', jobs)) return;
  $('#jobs-caption').textContent = `Active jobs of ${vc}`;
  const list = jobs.jobs || [];
  fill(
    $('#jobs-table tbody'),
    list.length
      ? list.map((j) =>
          h('tr', { 'data-job': j.id }, [
            h('th', { scope: 'row', text: j.id }),
            h('td', { text: j.name || '—' }),
            h('td', { text: j.owner || '—' }),
            h('td', {}, [badge(j.state)]),
            h('td', { text: j.slots }),
            h('td', { text: j.tasks || '—' }),
            h('td', { text: (j.hosts || []).join(', ') || '—' }),
            h('td', { text: j.submitted ? shortFmt.format(new Date(j.submitted)) : '—' }),
          ]),
        )
      : [emptyRow(8, 'No active jobs.')],
  );
}

// ---- wiring ------------------------------------------------------------------

function init() {
  $('#login-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', signOut);
  $('#reserve-form').addEventListener('submit', reserve);
  $('#reserve-now').addEventListener('click', fillNow);
  $('#gantt-controls').addEventListener('change', drawGantt);
  $('#gantt-controls').addEventListener('submit', (e) => e.preventDefault());
  $('#jobs-controls').addEventListener('submit', (e) => e.preventDefault());
  $('#jobs-vc').addEventListener('change', (e) => {
    location.hash = `#jobs/${encodeURIComponent(e.target.value)}`;
  });
  window.addEventListener('hashchange', route);
  fillNow();
  if (token()) start();
  else showLogin('');
}

init();
