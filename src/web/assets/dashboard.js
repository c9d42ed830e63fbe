/*
 * dashboard.js — the lockerfleet operator dashboard: one page, vanilla JS, no
 * build step. Talks to the hub's admin API with the token the operator
 * typed (kept in sessionStorage only):
 *
 *   GET  /v1/units?online=&shard=&after=&limit=   the units table (server pages)
 *   GET  /v1/units/{name}, /v1/units/{name}/config, /v1/events?stream=   detail view
 *   GET  /v1/events/live?after=POS                live updates (SSE read through
 *                                                 fetch, so the Bearer header goes along)
 *   GET  /v1/projections, POST /v1/projections/{name}/rebuild
 *   GET  /v1/alerts (if the hub has it)           reservations and conflicts
 *
 * Sorting by name with no name filter pages on the server (keyset cursor);
 * sorting by another column or filtering by name loads the units matching
 * the server-side filters (bounded) and sorts/filters/pages them here.
 */
'use strict';

const TOKEN_KEY = 'lockerfleet.adminToken';
const FULL_SCAN_MAX = 20000;  /* units loaded for client-side sort/filter */
const REFRESH_MS = 5000;      /* units page + counts refresh */
const EPS_WINDOW = 120;       /* seconds shown by the chart */

const $ = (id) => document.getElementById(id);
const state = {
  token: null,
  sort: { key: 'name', dir: 1 },
  filter: { online: '', shard: '', name: '' },
  pageSize: 50,
  cursors: [''],          /* server mode: cursor of each page visited */
  page: 0,
  next: null,
  rows: [],               /* units shown */
  full: null,             /* client mode: every matching unit */
  fullKey: '',
  byName: new Map(),      /* name -> row element, for live patches */
  loadSeq: 0,
  lastId: null,           /* last SSE id seen (log position) */
  live: null,             /* AbortController of the live stream */
  eps: new Map(),         /* second -> events received */
  resv: { held: 0, confirmed: 0, cancelled: 0, expired: 0, reassigned: 0, conflicts: 0 },
  alertsFromApi: null,    /* true / false once probed */
  alerts: [],
  timers: [],
  dirty: false,
  view: 'fleet',
};

/* ---- helpers ------------------------------------------------------------ */
function esc(s) {
  return String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

class HttpError extends Error {
  constructor(status, code, message) {
    super(message || ('HTTP ' + status));
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, opts) {
  const o = opts || {};
  const headers = { Authorization: 'Bearer ' + state.token };
  if (o.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, cache: 'no-store',
    body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
  });
  let body = null;
  const text = await r.text();
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
  if (r.status === 401 && !o.probe) {
    signOut('The hub rejected the token (401). Sign in again.');
    throw new HttpError(401, 'unauthorized');
  }
  if (!r.ok) {
    const err = body && body.error ? body.error : {};
    throw new HttpError(r.status, err.code, err.message || ('HTTP ' + r.status));
  }
  return body;
}

/* Relative time the way operators read it: "a few seconds ago",
 * "3 minutes ago", "7 months ago" (and "in …" for the future). */
function relTime(iso, now) {
  if (!iso) return null;
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(t)) return null;
  const diff = ((now || Date.now()) - t) / 1000;
  const s = Math.abs(diff);
  let txt;
  if (s < 45) txt = 'a few seconds';
  else if (s < 90) txt = 'a minute';
  else if (s < 45 * 60) txt = Math.round(s / 60) + ' minutes';
  else if (s < 90 * 60) txt = 'an hour';
  else if (s < 22 * 3600) txt = Math.round(s / 3600) + ' hours';
  else if (s < 36 * 3600) txt = 'a day';
  else if (s < 26 * 86400) txt = Math.round(s / 86400) + ' days';
  else if (s < 45 * 86400) txt = 'a month';
  else if (s < 320 * 86400) txt = Math.round(s / (30.4375 * 86400)) + ' months';
  else if (s < 548 * 86400) txt = 'a year';
  else txt = Math.round(s / (365.25 * 86400)) + ' years';
  return diff >= 0 ? txt + ' ago' : 'in ' + txt;
}

function timeCell(iso, empty) {
  const r = relTime(iso);
  if (!r) return '<span class="unknown">' + esc(empty || 'never') + '</span>';
  return '<time datetime="' + esc(iso) + '" title="' + esc(iso) + '">' + esc(r) + '</time>';
}

function refreshRelTimes(root) {
  for (const el of (root || document).querySelectorAll('time[datetime]')) {
    const r = relTime(el.getAttribute('datetime'));
    if (r && el.textContent !== r) el.textContent = r;
  }
}

function lockerCount(u) {
  if (Array.isArray(u.lockers)) return u.lockers.length;
  if (typeof u.lockers === 'number') return u.lockers;
  if (u.lockers && typeof u.lockers === 'object') {
    if ('count' in u.lockers) return u.lockers.count;
    if ('total' in u.lockers) return u.lockers.total;
  }
  return null;
}

/* config_version is {"desired","applied"} (or a plain number). */
function configVersionHtml(cv) {
  if (cv == null) return '';
  if (typeof cv !== 'object') return ' <span class="reason">v' + esc(cv) + '</span>';
  const a = cv.applied || 0, d = cv.desired || 0;
  if (!a && !d) return '';
  return ' <span class="reason">v' + esc(a) + (d > a ? ' → v' + esc(d) + ' pending' : '') + '</span>';
}

function lockerSizes(u) {
  const l = u.lockers;
  if (!l || typeof l !== 'object' || Array.isArray(l)) return '';
  return ['S', 'M', 'L'].filter((k) => l[k]).map((k) => k + ' ' + l[k]).join(' · ');
}

function onlineOf(u) {
  if (u.online === true || u.online === false) return u.online;
  if (typeof u.online === 'string') return u.online === 'true' || u.online === 'online';
  if (u.status) return u.status === 'online';
  return null;
}

function offlineReason(u) {
  return u.offline_reason || u.reason || (u.presence_state && u.presence_state.reason) || '';
}

/* ---- sign-in ----------------------------------------------------------- */
function showLogin(msg) {
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
  $('token-input').value = '';
  $('token-input').focus();
}

function signOut(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  stopAll();
  showLogin(msg);
}

async function signIn(token) {
  state.token = token;
  try {
    await api('GET', '/v1/units?limit=1', { probe: true });
  } catch (e) {
    state.token = null;
    const why = e.status === 401 || e.status === 403 ? 'That token is not an admin token of this hub.'
      : 'Cannot reach the hub: ' + e.message;
    showLogin(why);
    return false;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  startAll();
  return true;
}

/* ---- units table --------------------------------------------------------- */
function clientMode() {
  return state.sort.key !== 'name' || state.sort.dir !== 1 || state.filter.name !== '';
}

function unitsQuery(after, limit) {
  const q = new URLSearchParams();
  if (state.filter.online) q.set('online', state.filter.online);
  if (state.filter.shard) q.set('shard', state.filter.shard);
  if (after) q.set('after', after);
  q.set('limit', String(limit));
  return '/v1/units?' + q.toString();
}

function unitsOf(body) {
  if (Array.isArray(body)) return { units: body, next: null };
  return { units: (body && body.units) || [], next: (body && body.next) || null };
}

async function loadAllMatching() {
  const out = [];
  let after = '';
  for (;;) {
    const { units, next } = unitsOf(await api('GET', unitsQuery(after, 1000)));
    out.push(...units);
    if (!next || units.length === 0 || out.length >= FULL_SCAN_MAX) break;
    after = next;
  }
  return out;
}

function compareBy(key, dir) {
  const val = (u) => {
    if (key === 'lockers') return lockerCount(u);
    if (key === 'last_response_ms') {
      /* fastest first, then online without a figure, then offline */
      if (onlineOf(u) === false) return Infinity;
      return u.last_response_ms == null ? Number.MAX_SAFE_INTEGER : u.last_response_ms;
    }
    if (key === 'last_config_pushed_at' || key === 'last_online_at') {
      const t = Date.parse(u[key]);
      return Number.isFinite(t) ? t : null;
    }
    return u[key];
  };
  return (a, b) => {
    const x = val(a), y = val(b);
    if (x == null && y == null) return a.name < b.name ? -1 : 1;
    if (x == null) return 1;  /* empties last whatever the direction */
    if (y == null) return -1;
    if (x < y) return -dir;
    if (x > y) return dir;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  };
}

async function loadUnits(opts) {
  const seq = ++state.loadSeq;
  const table = $('units-table');
  if (!(opts && opts.quiet)) table.dataset.loading = 'true';
  try {
    let rows, hasNext, note = '';
    if (clientMode()) {
      const key = JSON.stringify([state.filter.online, state.filter.shard]);
      if (!state.full || state.fullKey !== key || (opts && opts.refetch)) {
        state.full = await loadAllMatching();
        state.fullKey = key;
      }
      if (seq !== state.loadSeq) return;
      const needle = state.filter.name.toLowerCase();
      let list = state.full;
      if (needle) {
        list = list.filter((u) => u.name.toLowerCase().includes(needle) ||
          String(u.display_name || '').toLowerCase().includes(needle));
      }
      list = list.slice().sort(compareBy(state.sort.key, state.sort.dir));
      const pages = Math.max(1, Math.ceil(list.length / state.pageSize));
      if (state.page >= pages) state.page = pages - 1;
      rows = list.slice(state.page * state.pageSize, (state.page + 1) * state.pageSize);
      hasNext = state.page + 1 < pages;
      $('page-info').textContent = list.length === 0 ? 'no units'
        : 'page ' + (state.page + 1) + ' of ' + pages + ' · ' + list.length + ' units';
      note = state.full.length >= FULL_SCAN_MAX ? 'first ' + FULL_SCAN_MAX + ' units only' : '';
    } else {
      state.full = null;
      const body = await api('GET', unitsQuery(state.cursors[state.page], state.pageSize));
      if (seq !== state.loadSeq) return;
      const { units, next } = unitsOf(body);
      rows = units;
      state.next = next;
      hasNext = !!next;
      $('page-info').textContent = units.length === 0 && state.page === 0 ? 'no units'
        : 'page ' + (state.page + 1) + (units.length ? ' · ' + units[0].name + ' … ' +
          units[units.length - 1].name : '');
    }
    state.rows = rows;
    renderUnits(rows);
    $('page-prev').disabled = state.page === 0;
    $('page-next').disabled = !hasNext;
    $('units-note').textContent = note;
    table.dataset.loading = 'false';
    table.dataset.loaded = String(Date.now());
  } catch (e) {
    if (seq !== state.loadSeq || e.status === 401) return;
    table.dataset.loading = 'false';
    $('units-note').textContent = 'could not load units: ' + e.message;
  }
}

function statusCell(u) {
  const on = onlineOf(u);
  if (on === false) {
    const why = offlineReason(u);
    return '<span class="offline">Offline</span>' +
      (why ? ' <span class="reason">(' + esc(String(why).replace(/_/g, ' ')) + ')</span>' : '');
  }
  if (on === null || u.last_response_ms == null || u.last_response_ms < 0) {
    return on ? '<span class="pill ok">online</span>' : '<span class="unknown">not yet seen</span>';
  }
  return esc(Math.round(u.last_response_ms)) + ' ms';
}

function rowHtml(u) {
  const on = onlineOf(u);
  const lockers = lockerCount(u);
  const cfg = u.last_config_pushed_at
    ? timeCell(u.last_config_pushed_at) + configVersionHtml(u.config_version)
    : '<span class="unknown">never</span>' + configVersionHtml(u.config_version);
  return '<tr data-unit="' + esc(u.name) + '" data-online="' + (on === null ? 'unknown' : String(on)) + '">' +
    '<td data-col="name"><a href="#/units/' + encodeURIComponent(u.name) + '">' + esc(u.name) + '</a></td>' +
    '<td data-col="display_name">' + esc(u.display_name || '') + '</td>' +
    '<td data-col="lockers" class="num" title="' + esc(lockerSizes(u)) + '">' + (lockers == null ? '' : esc(lockers)) + '</td>' +
    '<td data-col="status" class="num">' + statusCell(u) + '</td>' +
    '<td data-col="last_config_pushed_at">' + cfg + '</td>' +
    '<td data-col="last_online_at">' + timeCell(u.last_online_at) + '</td>' +
    '<td data-col="shard" class="mono">' + esc(u.shard || '') + '</td></tr>';
}

function renderUnits(rows) {
  const body = $('units-body');
  if (rows.length === 0) {
    body.innerHTML = '<tr class="empty"><td colspan="7">No units match.</td></tr>';
  } else {
    body.innerHTML = rows.map(rowHtml).join('');
  }
  state.byName = new Map();
  rows.forEach((u, i) => state.byName.set(u.name, { unit: u, el: body.children[i] }));
  for (const th of document.querySelectorAll('#units-table th[data-sort]')) {
    const k = th.dataset.sort;
    if (k === state.sort.key) th.setAttribute('aria-sort', state.sort.dir > 0 ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

/* A live event about a unit on screen: patch its row at once (the next
 * refresh brings the authoritative values). */
function patchUnit(name, fn) {
  const hit = state.byName.get(name);
  if (!hit) return;
  fn(hit.unit);
  const tmp = document.createElement('tbody');
  tmp.innerHTML = rowHtml(hit.unit);
  const el = tmp.firstElementChild;
  el.classList.add('flash');
  hit.el.replaceWith(el);
  hit.el = el;
}

/* ---- counts ---------------------------------------------------------------- */
/* Sum of the samples of a metric family whose labels include `label`
 * (e.g. lockerfleet_units{state="online"} 12); null if there is none. */
function parseMetric(text, name, label) {
  let sum = null;
  const re = new RegExp('^' + name + '(\\{([^}]*)\\})?\\s+([0-9.eE+-]+)\\s*$', 'gm');
  for (const m of text.matchAll(re)) {
    if (label && !(m[2] || '').includes(label)) continue;
    sum = (sum || 0) + Number(m[3]);
  }
  return sum;
}

async function countOnline(online) {
  /* Exact count by walking server pages (bounded), only as a fallback. */
  let n = 0, after = '';
  const q = new URLSearchParams();
  for (let i = 0; i < 50; i++) {
    q.set('online', online); q.set('limit', '1000');
    if (after) q.set('after', after); else q.delete('after');
    const { units, next } = unitsOf(await api('GET', '/v1/units?' + q.toString()));
    n += units.length;
    if (!next || !units.length) break;
    after = next;
  }
  return n;
}

async function loadCounts() {
  try {
    const body = await api('GET', '/v1/units?limit=1');
    let total = null, online = null, offline = null;
    const c = body && (body.counts || body.summary);
    if (c) { total = c.total; online = c.online; offline = c.offline; }
    if (body && typeof body.total === 'number') total = body.total;
    if (online == null) {
      try {
        const r = await fetch('/metrics', { headers: { Authorization: 'Bearer ' + state.token }, cache: 'no-store' });
        if (r.ok) {
          const t = await r.text();
          online = parseMetric(t, 'lockerfleet_units', 'state="online"');
          offline = parseMetric(t, 'lockerfleet_units', 'state="offline"');
          if (total == null) total = parseMetric(t, 'lockerfleet_units', '');
        }
      } catch (e) { /* fall through */ }
    }
    if (online == null || offline == null) {
      online = await countOnline('true');
      offline = await countOnline('false');
    }
    if (total == null) total = online + offline;
    $('count-total').textContent = total;
    $('count-online').textContent = online;
    $('count-offline').textContent = offline;
  } catch (e) { /* shown as stale numbers; the next refresh retries */ }
}

async function loadShards() {
  const sel = $('filter-shard');
  if (sel.options.length > 1) return;
  for (let i = 0; i < 16; i++) {
    const o = document.createElement('option');
    o.value = o.textContent = i.toString(16);
    sel.appendChild(o);
  }
}

/* ---- live events (SSE over fetch) --------------------------------------- */
function setLive(st, text) {
  const el = $('live-status');
  el.dataset.state = st;
  el.textContent = 'live: ' + (text || st);
}

async function liveLoop(ctrl) {
  let backoff = 500;
  while (!ctrl.signal.aborted) {
    setLive('connecting');
    try {
      const url = '/v1/events/live' + (state.lastId != null ? '?after=' + encodeURIComponent(state.lastId) : '');
      const r = await fetch(url, {
        headers: { Authorization: 'Bearer ' + state.token, Accept: 'text/event-stream' },
        cache: 'no-store', signal: ctrl.signal,
      });
      if (r.status === 401) { signOut('The hub rejected the token (401).'); return; }
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      setLive('open', 'on');
      backoff = 500;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        /* normalise line ends, keeping a trailing \r that may pair later */
        buf = buf.replace(/\r\n/g, '\n').replace(/\r(?!$)/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          sseBlock(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
        if (buf.length > 4 << 20) buf = ''; /* a runaway event: drop it */
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setLive('connecting', 'reconnecting');
    await new Promise((res) => setTimeout(res, backoff));
    backoff = Math.min(backoff * 2, 10000);
  }
}

function sseBlock(block) {
  let id = null, data = '', type = '';
  for (const line of block.split('\n')) {
    if (!line || line[0] === ':') continue;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let v = c < 0 ? '' : line.slice(c + 1);
    if (v[0] === ' ') v = v.slice(1);
    if (field === 'id') id = v;
    else if (field === 'data') data += (data ? '\n' : '') + v;
    else if (field === 'event') type = v;
  }
  if (id) state.lastId = id;
  if (!data) return;
  let ev;
  try { ev = JSON.parse(data); } catch (e) { return; }
  if (!ev || typeof ev !== 'object') return;
  if (!ev.type && type) ev.type = type;
  if (ev.position != null && !id) state.lastId = String(ev.position);
  onEvent(ev);
}

const feedItems = [];
function onEvent(ev) {
  const sec = Math.floor(Date.now() / 1000);
  state.eps.set(sec, (state.eps.get(sec) || 0) + 1);
  const stream = ev.stream || '';
  const d = ev.data || {};
  feedItems.push(ev);
  if (feedItems.length > 60) feedItems.shift();
  if (stream.startsWith('unit-')) {
    const name = stream.slice(5);
    switch (ev.type) {
      case 'UnitCameOnline':
        patchUnit(name, (u) => {
          u.online = true;
          if (d.response_ms != null) u.last_response_ms = d.response_ms;
          u.last_online_at = d.at || ev.time;
          u.offline_reason = '';
        });
        state.dirty = true;
        break;
      case 'UnitWentOffline':
        patchUnit(name, (u) => { u.online = false; u.offline_reason = d.reason || ''; u.last_response_ms = null; });
        state.dirty = true;
        break;
      case 'ConfigApplied':
        patchUnit(name, (u) => {
          u.last_config_pushed_at = ev.time;
          if (d.version != null) {
            const cv = u.config_version && typeof u.config_version === 'object' ? u.config_version : {};
            u.config_version = { desired: Math.max(cv.desired || 0, d.version), applied: d.version };
          }
        });
        break;
      case 'UnitRegistered':
        state.dirty = true;
        break;
      default:
    }
  } else if (stream.startsWith('bookings-')) {
    const r = state.resv;
    if (ev.type === 'ReservationHeld') r.held++;
    else if (ev.type === 'ReservationConfirmed') r.confirmed++;
    else if (ev.type === 'ReservationCancelled') r.cancelled++;
    else if (ev.type === 'ReservationExpired') r.expired++;
    else if (ev.type === 'ReservationReassigned') r.reassigned++;
    else if (ev.type === 'ConflictDetected') { r.conflicts++; addAlert(ev); }
    renderResv();
  } else if (ev.type === 'HardwareError') {
    addAlert(ev);
  }
}

function addAlert(ev) {
  if (state.alertsFromApi) return; /* the alerts projection has it */
  state.alerts.unshift(ev);
  if (state.alerts.length > 50) state.alerts.pop();
  renderAlerts();
}

/* An alert is either a row of GET /v1/alerts ({kind, unit, component,
 * message, at, active}) or, without that endpoint, a log event. */
function alertText(a) {
  const d = a.data || a;
  const unit = a.unit || (a.stream ? a.stream.replace(/^(bookings|unitlog|unit)-/, '') : '') || d.unit || '';
  const kind = a.kind || (a.type === 'ConflictDetected' ? 'conflict' : a.type === 'HardwareError' ? 'hardware_error' : a.type);
  if (kind === 'conflict') {
    return 'Conflict on ' + unit + ': ' + (a.message || ('locker ' + (d.locker || '?') + ', reservation ' +
      String(d.reservation_id || '').slice(0, 8) + ' ' + (d.resolution || '')));
  }
  if (kind === 'hardware_error') {
    return 'Hardware error on ' + unit + ': ' + (d.component || '') + (d.message ? ' — ' + d.message : '');
  }
  if (kind === 'config_rejected') return 'Config rejected by ' + unit + ': ' + (d.message || '');
  if (kind === 'unit_offline') return unit + ' offline' + (d.message ? ': ' + d.message : '');
  return kind + ' on ' + unit + ' ' + (d.message || JSON.stringify(d.data || {}).slice(0, 100));
}

function renderAlerts() {
  const ul = $('alerts');
  if (!state.alerts.length) {
    ul.innerHTML = '<li class="muted">No conflicts, hardware errors or rejected configs.</li>';
    return;
  }
  ul.innerHTML = state.alerts.slice(0, 50).map((a) => {
    const kind = a.kind || a.type || '';
    const cleared = a.active === false && kind !== 'conflict' ? ' <span class="muted">(cleared)</span>' : '';
    return '<li data-alert="' + esc(kind) + '" title="' + esc(alertText(a)) + '">' +
      timeCell(a.at || a.time, '') + ' ' + esc(alertText(a)) + cleared + '</li>';
  }).join('');
}

async function fetchAlerts(query, keep) {
  let out = [], after = 0;
  for (let i = 0; i < 20; i++) {
    const body = await api('GET', '/v1/alerts?limit=1000&after=' + after + (query ? '&' + query : ''));
    const list = (body && body.alerts) || [];
    out = out.concat(list).slice(-keep);
    if (!body || body.next == null || !list.length) break;
    after = body.next;
  }
  return out;
}

async function loadAlerts() {
  if (state.alertsFromApi === false) return;
  try {
    const active = await fetchAlerts('active=true', 5000);
    const conflicts = await fetchAlerts('kind=conflict', 50);
    state.alertsFromApi = true;
    const byKind = {};
    for (const a of active) byKind[a.kind] = (byKind[a.kind] || 0) + 1;
    state.activeAlerts = byKind;
    state.alerts = active.filter((a) => a.kind !== 'unit_offline').concat(conflicts)
      .sort((x, y) => String(y.at).localeCompare(String(x.at))).slice(0, 50);
    renderResv();
    renderAlerts();
  } catch (e) {
    if (e.status !== 404 && e.status !== 405) return;
    state.alertsFromApi = false;
    /* No alerts endpoint: look back over the recent log for them. */
    try {
      const head = Number(((await api('GET', '/v1/events?limit=1')) || {}).head) || 0;
      const body = await api('GET', '/v1/events?after=' + Math.max(0, head - 1000) + '&limit=1000');
      for (const ev of (body && body.events) || []) {
        if (ev.type === 'ConflictDetected' || ev.type === 'HardwareError') state.alerts.unshift(ev);
      }
      state.alerts = state.alerts.slice(0, 50);
      renderAlerts();
    } catch (e2) { /* leave it to the live stream */ }
  }
}

function renderResv() {
  const r = state.resv;
  const al = state.activeAlerts || {};
  $('resv-counts').innerHTML = [['held', r.held], ['confirmed', r.confirmed], ['cancelled', r.cancelled],
    ['expired', r.expired], ['reassigned', r.reassigned], ['conflicts', r.conflicts]]
    .map(([k, v]) => '<span class="chip' + (k === 'conflicts' && v ? ' bad' : '') + '" data-resv="' + k + '">' +
      k + ' <b>' + v + '</b></span>').join('') +
    Object.keys(al).sort().map((k) => '<span class="chip bad" data-active-alert="' + esc(k) + '" title="open alerts">' +
      esc(k.replace(/_/g, ' ')) + ' <b>' + al[k] + '</b></span>').join('');
}

function renderFeed() {
  const ul = $('event-feed');
  ul.innerHTML = feedItems.slice(-30).reverse().map((ev) =>
    '<li title="' + esc(JSON.stringify(ev.data || {})) + '">' + esc((ev.time || '').slice(11, 19)) + ' ' +
    esc(ev.type || '') + ' <span class="muted">' + esc(ev.stream || '') + '</span></li>').join('');
}

/* ---- events-per-second chart (canvas, drawn by hand) --------------------- */
function drawChart() {
  const cv = $('eps-chart');
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth || 560, h = cv.clientHeight || 140;
  if (cv.width !== Math.round(w * dpr)) { cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr); }
  const g = cv.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const now = Math.floor(Date.now() / 1000);
  const vals = [];
  for (let s = now - EPS_WINDOW; s < now; s++) vals.push(state.eps.get(s) || 0);
  for (const k of state.eps.keys()) if (k < now - EPS_WINDOW - 5) state.eps.delete(k);
  const max = Math.max(4, ...vals);
  const step = niceStep(max / 4);
  const top = Math.ceil(max / step) * step;
  const left = 36, bottom = 16, plotW = w - left - 4, plotH = h - bottom - 6;
  g.font = '10px system-ui, sans-serif';
  g.fillStyle = '#6b7280';
  g.strokeStyle = '#e5e7eb';
  g.lineWidth = 1;
  for (let v = 0; v <= top; v += step) {
    const y = 6 + plotH - (plotH * v) / top;
    g.beginPath(); g.moveTo(left, Math.round(y) + 0.5); g.lineTo(w - 4, Math.round(y) + 0.5); g.stroke();
    g.fillText(String(v), 2, y + 3);
  }
  g.fillText('-' + EPS_WINDOW + ' s', left, h - 3);
  g.fillText('now', w - 24, h - 3);
  const bw = plotW / vals.length;
  g.fillStyle = '#3b82f6';
  vals.forEach((v, i) => {
    if (!v) return;
    const bh = (v / top) * plotH;
    g.fillRect(left + i * bw, 6 + plotH - bh, Math.max(1, bw - 1), bh);
  });
  const last5 = vals.slice(-5);
  $('eps-value').textContent = (last5.reduce((a, b) => a + b, 0) / last5.length).toFixed(1);
}

/* A round grid step (1, 2 or 5 times a power of ten) of at least v. */
function niceStep(v) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(v, 1))));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/* ---- projections ------------------------------------------------------------ */
async function loadProjections() {
  try {
    const body = await api('GET', '/v1/projections');
    const list = Array.isArray(body) ? body : (body && body.projections) || [];
    const tb = $('projections-body');
    if (!list.length) { tb.innerHTML = '<tr class="empty"><td colspan="5">No projections.</td></tr>'; return; }
    tb.innerHTML = list.map((p) => {
      const lag = p.lag == null ? '' : p.lag;
      const st = p.state || p.status || '';
      const pct = p.rebuild_progress != null ? ' ' + Math.round(p.rebuild_progress * 100) + '%' : '';
      return '<tr data-projection="' + esc(p.name) + '"><td>' + esc(p.name) +
        (p.version != null ? ' <span class="reason">v' + esc(p.version) + '</span>' : '') + '</td>' +
        '<td class="num">' + esc(p.position == null ? '' : p.position) + '</td>' +
        '<td class="num' + (lag > 1000 ? ' offline' : '') + '" data-col="lag">' + esc(lag) + '</td>' +
        '<td data-col="state">' + esc(st + pct) + '</td>' +
        '<td><button type="button" class="danger" data-rebuild="' + esc(p.name) + '"' +
        (/rebuild/i.test(st) ? ' disabled' : '') + '>rebuild</button></td></tr>';
    }).join('');
  } catch (e) {
    if (e.status !== 401) $('projections-body').innerHTML = '<tr class="empty"><td colspan="5">' + esc(e.message) + '</td></tr>';
  }
}

async function rebuild(name, btn) {
  if (!window.confirm('Rebuild projection "' + name + '" from the log? Reads from it lag until it catches up.')) return;
  btn.disabled = true;
  try {
    await api('POST', '/v1/projections/' + encodeURIComponent(name) + '/rebuild');
  } catch (e) {
    window.alert('Rebuild of ' + name + ' failed: ' + e.message);
  }
  loadProjections();
}

/* ---- unit detail ------------------------------------------------------------ */
async function showUnit(name) {
  $('view-fleet').hidden = true;
  $('view-unit').hidden = false;
  $('unit-title').textContent = name;
  $('unit-detail').dataset.unit = name;
  $('unit-detail').dataset.loading = 'true';
  const n = encodeURIComponent(name);
  const [u, cfg, ev1, ev2] = await Promise.allSettled([
    api('GET', '/v1/units/' + n),
    api('GET', '/v1/units/' + n + '/config'),
    recentEvents('unit-' + name),
    recentEvents('unitlog-' + name),
  ]);
  if (state.view !== 'unit:' + name) return;
  if (u.status === 'fulfilled') {
    const x = u.value || {};
    const unit = x.unit || x;
    const on = onlineOf(unit);
    $('unit-status').innerHTML = on === false ? statusCell(unit) : on ? '<span class="pill ok">online</span>' : '';
    const kv = [
      ['Display name', esc(unit.display_name || '')], ['Shard', esc(unit.shard || '')],
      ['Presence', esc(unit.presence || '')], ['Uplink', esc(unit.uplink || '')], ['URL', esc(unit.url || '')],
      ['Last response', statusCell(unit)], ['Last online at', timeCell(unit.last_online_at)],
      ['Last config pushed', timeCell(unit.last_config_pushed_at)],
      ['Config version', configVersionHtml(unit.config_version) || '—'],
      ['Allotment (offline)', esc((unit.allotment || []).join(', '))],
      ['Registered', timeCell(unit.registered_at, '')],
    ];
    $('unit-summary').innerHTML = kv.map(([k, v]) => '<dt>' + k + '</dt><dd>' + v + '</dd>').join('');
    const lockers = Array.isArray(unit.locker_list) ? unit.locker_list : Array.isArray(unit.lockers) ? unit.lockers : [];
    $('unit-lockers').innerHTML = lockers.map((l) =>
      '<span class="chip" data-locker="' + esc(l.id) + '">' + esc(l.id) + ' · ' + esc(l.size) + '</span>').join('') ||
      '<span class="muted">' + esc(lockerCount(unit) == null ? 'unknown' : lockerCount(unit) + ' lockers') + '</span>';
  } else {
    $('unit-summary').innerHTML = '<dt>Error</dt><dd class="error">' + esc(u.reason.message) + '</dd>';
  }
  if (cfg.status === 'fulfilled') {
    const c = cfg.value || {};
    $('unit-config').innerHTML = [['Desired version', c.desired_version], ['Applied version', c.applied_version],
      ['State', c.state || c.delivery || ''], ['Next attempt', c.next_attempt_at ? timeCell(c.next_attempt_at) : '—']]
      .map(([k, v]) => '<dt>' + k + '</dt><dd>' + (typeof v === 'string' && v.startsWith('<') ? v : esc(v == null ? '—' : v)) + '</dd>').join('');
    const att = Array.isArray(c.attempts) ? c.attempts : [];
    $('unit-attempts').tBodies[0].innerHTML = att.length ? att.slice(-50).reverse().map((a) =>
      '<tr><td>' + esc(a.version) + '</td><td>' + esc(a.attempt) + '</td><td>' + esc(a.result || a.state || '') +
      '</td><td>' + esc(a.reason || '') + '</td><td>' + timeCell(a.at || a.time, '') + '</td><td>' +
      (a.next_attempt_at ? timeCell(a.next_attempt_at) : '') + '</td></tr>').join('')
      : '<tr class="empty"><td colspan="6">No deliveries yet.</td></tr>';
    $('unit-config-json').textContent = c.config ? JSON.stringify(c.config, null, 2) : '(no config pushed)';
  } else {
    $('unit-config').innerHTML = '<dt>Error</dt><dd class="error">' + esc(cfg.reason.message) + '</dd>';
  }
  const evs = [];
  for (const r of [ev1, ev2]) if (r.status === 'fulfilled') evs.push(...((r.value && r.value.events) || []));
  evs.sort((a, b) => (b.position || 0) - (a.position || 0));
  $('unit-events').tBodies[0].innerHTML = evs.length ? evs.slice(0, 100).map((e) =>
    '<tr data-type="' + esc(e.type) + '"><td>' + timeCell(e.time, '') + '</td><td class="mono">' + esc(e.stream) +
    '</td><td>' + esc(e.type) + '</td><td class="mono">' + esc(JSON.stringify(e.data || {}).slice(0, 160)) +
    '</td></tr>').join('') : '<tr class="empty"><td colspan="4">No events.</td></tr>';
  $('unit-detail').dataset.loading = 'false';
}

/* The latest events of a stream: look in the recent part of the log
 * first (a busy unit has more than one page since it registered), then
 * from the stream's start if that found few. */
async function recentEvents(stream) {
  const q = '/v1/events?limit=1000&stream=' + encodeURIComponent(stream);
  const head = Number(((await api('GET', '/v1/events?limit=1')) || {}).head) || 0;
  const from = Math.max(0, head - 50000);
  let evs = ((await api('GET', q + '&after=' + from)) || {}).events || [];
  if (evs.length < 100 && from > 0) {
    const older = ((await api('GET', q)) || {}).events || [];
    const seen = new Set(evs.map((e) => e.position));
    evs = older.filter((e) => !seen.has(e.position)).concat(evs);
  }
  return { events: evs };
}

function route() {
  const m = location.hash.match(/^#\/units\/(.+)$/);
  if (m) {
    const name = decodeURIComponent(m[1]);
    state.view = 'unit:' + name;
    if (state.token) showUnit(name);
  } else {
    state.view = 'fleet';
    $('view-unit').hidden = true;
    $('view-fleet').hidden = false;
  }
}

/* ---- lifecycle -------------------------------------------------------------- */
function every(ms, fn) {
  state.timers.push(setInterval(fn, ms));
}

function startAll() {
  stopAll();
  loadShards();
  renderResv();
  loadUnits();
  loadCounts();
  loadProjections();
  const ctrl = new AbortController();
  state.live = ctrl;
  liveLoop(ctrl);
  setTimeout(loadAlerts, 1500);
  every(1000, () => { drawChart(); renderFeed(); });
  let tick = 0;
  every(REFRESH_MS, () => {
    if (document.hidden) return;
    if (state.view.startsWith('unit:')) { showUnit(state.view.slice(5)); return; }
    if (state.view !== 'fleet') return;
    /* A big client-side set (sort by another column, name filter) is
     * fetched again only every third tick: it is many pages. */
    const big = clientMode() && state.full && state.full.length > 2000;
    if (!big || ++tick % 3 === 0) loadUnits({ quiet: true, refetch: true });
    loadCounts();
  });
  every(2000, () => { if (state.view === 'fleet' && !document.hidden) loadProjections(); });
  every(10000, () => { if (state.alertsFromApi) loadAlerts(); refreshRelTimes(); });
  every(1000, () => {
    if (state.dirty && state.view === 'fleet') { state.dirty = false; loadCounts(); }
  });
  route();
}

function stopAll() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.live) state.live.abort();
  state.live = null;
  setLive('closed', 'off');
}

function resetPaging() {
  state.page = 0;
  state.cursors = [''];
  state.next = null;
}

function wire() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token-input').value.trim();
    if (t) signIn(t);
  });
  $('logout').addEventListener('click', () => signOut('Signed out.'));
  $('filter-online').addEventListener('change', (e) => { state.filter.online = e.target.value; resetPaging(); loadUnits(); });
  $('filter-shard').addEventListener('change', (e) => { state.filter.shard = e.target.value; resetPaging(); loadUnits(); });
  let nameTimer = null;
  $('filter-name').addEventListener('input', (e) => {
    clearTimeout(nameTimer);
    nameTimer = setTimeout(() => { state.filter.name = e.target.value.trim(); resetPaging(); loadUnits(); }, 200);
  });
  $('page-size').addEventListener('change', (e) => { state.pageSize = Number(e.target.value); resetPaging(); loadUnits(); });
  $('page-next').addEventListener('click', () => {
    if (!clientMode()) {
      if (!state.next) return;
      state.cursors[state.page + 1] = state.next;
    }
    state.page++;
    loadUnits();
  });
  $('page-prev').addEventListener('click', () => {
    if (state.page > 0) { state.page--; loadUnits(); }
  });
  for (const th of document.querySelectorAll('#units-table th[data-sort]')) {
    th.addEventListener('click', () => {
      const k = th.dataset.sort;
      if (state.sort.key === k) state.sort.dir = -state.sort.dir;
      else state.sort = { key: k, dir: 1 };
      resetPaging();
      loadUnits();
    });
  }
  $('projections-body').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-rebuild]');
    if (b) rebuild(b.dataset.rebuild, b);
  });
  window.addEventListener('hashchange', route);
}

function boot() {
  wire();
  /* A token in the fragment (#token=…, printed by `lockerfleet demo`) is
   * moved to session storage and removed from the address bar. */
  const m = location.hash.match(/^#token=([^&]+)$/);
  let token = sessionStorage.getItem(TOKEN_KEY);
  if (m) {
    token = decodeURIComponent(m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
  route();
  if (token) signIn(token);
  else showLogin('');
}

boot();
