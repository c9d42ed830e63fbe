// app.js — the customer web app served by the hub at /app (app.html).
// Vanilla JS, no external assets. Talks to the hub's reservation API with
// the user's bearer token (kept in sessionStorage only):
//   GET  /v1/availability, POST /v1/reservations (Idempotency-Key),
//   POST /v1/reservations/{id}/confirm|cancel, GET /v1/reservations.
// The payment step is simulated: "Pay and confirm" confirms the hold.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'lf-app-token';
  const RECENT_KEY = 'lf-app-units';
  const PRICE_CENTS_PER_HOUR = 200; // the hub's placeholder price (docs/API.md)
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let hold = null; // {id, locker, unit, from, to, hold_expires_at}
  let pending = null; // {unit, size, from, to}
  let timer = null;
  let lastPosition = 0;

  function showError(msg) {
    const e = $('error');
    e.textContent = msg || '';
    e.hidden = !msg;
  }

  async function api(method, path, body, extraHeaders) {
    const headers = { Authorization: 'Bearer ' + token, ...(extraHeaders || {}) };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try {
      data = await r.json();
    } catch (_) {
      data = null;
    }
    if (data && typeof data.position === 'number' && data.position > lastPosition) lastPosition = data.position;
    return { status: r.status, data };
  }

  function errText(res, what) {
    const e = res.data && res.data.error;
    const known = {
      unavailable: 'No locker of this size is free for that time.',
      hold_expired: 'The hold expired before payment. Please reserve again.',
      reservation_cancelled: 'This reservation was cancelled.',
      already_cancelled: 'Already cancelled.',
      reservation_expired: 'This reservation has expired.',
      window_over: 'This reservation is over.',
      not_found: 'Not found — check the station name.',
      unauthorized: 'This token is not valid.',
      forbidden: 'This token may not book lockers.',
    };
    if (e && known[e.code]) return known[e.code];
    return `${what}: ${e ? e.message : 'HTTP ' + res.status}`;
  }

  function fmt(t) {
    return new Date(t).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
  }

  function money(cents) {
    return (cents / 100).toLocaleString([], { style: 'currency', currency: 'EUR' });
  }

  function views(name) {
    const signedIn = !!token;
    $('login-view').hidden = signedIn;
    $('logout').hidden = !signedIn;
    $('list-view').hidden = !signedIn;
    $('book-view').hidden = !signedIn || name !== 'book';
    $('hold-view').hidden = !signedIn || name !== 'hold';
    $('done-view').hidden = !signedIn || name !== 'done';
  }

  function recentUnits() {
    try {
      return JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    } catch (_) {
      return [];
    }
  }

  function rememberUnit(u) {
    const list = [u, ...recentUnits().filter((x) => x !== u)].slice(0, 8);
    localStorage.setItem(RECENT_KEY, JSON.stringify(list));
    fillRecent();
  }

  function fillRecent() {
    const dl = $('recent-units');
    dl.textContent = '';
    for (const u of recentUnits()) {
      const o = document.createElement('option');
      o.value = u;
      dl.appendChild(o);
    }
  }

  function windowFromForm() {
    const from = new Date($('from').value);
    const hours = Number($('hours').value);
    if (isNaN(from.getTime()) || !(hours >= 1)) return null;
    const to = new Date(from.getTime() + hours * 3600 * 1000);
    return { from: from.toISOString(), to: to.toISOString(), hours };
  }

  function defaultFrom() {
    const d = new Date(Date.now() + 5 * 60 * 1000);
    d.setSeconds(0, 0);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  // ---- sign in ----------------------------------------------------------
  async function login(ev) {
    ev.preventDefault();
    showError('');
    token = $('token').value.trim();
    const res = await api('GET', '/v1/reservations?limit=1');
    if (res.status !== 200) {
      token = '';
      showError(errText(res, 'Sign-in failed'));
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    views('book');
    loadList();
  }

  function logout() {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    stopTimer();
    views('login');
  }

  // ---- availability and reserve ----------------------------------------
  async function check(ev) {
    ev.preventDefault();
    showError('');
    $('reserve').hidden = true;
    const unit = $('unit').value.trim();
    const size = document.querySelector('input[name="size"]:checked').value;
    const w = windowFromForm();
    if (!w) {
      showError('Choose a start time and a number of hours.');
      return;
    }
    const q = new URLSearchParams({ unit, size, from: w.from, to: w.to });
    const res = await api('GET', '/v1/availability?' + q);
    if (res.status !== 200) {
      $('availability').textContent = '';
      showError(errText(res, 'Availability'));
      return;
    }
    rememberUnit(unit);
    const free = res.data.free;
    $('availability').dataset.free = String(free);
    $('availability').textContent = free > 0
      ? `${free} ${size} locker${free === 1 ? '' : 's'} free, ${fmt(w.from)} – ${fmt(w.to)}. Price ${money(Math.ceil(w.hours) * PRICE_CENTS_PER_HOUR)}.`
      : `No ${size} locker free for that time.`;
    pending = free > 0 ? { unit, size, from: w.from, to: w.to } : null;
    $('reserve').hidden = free <= 0;
  }

  async function reserve() {
    if (!pending) return;
    showError('');
    $('reserve').disabled = true;
    const key = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    const res = await api('POST', '/v1/reservations', pending, { 'Idempotency-Key': key });
    $('reserve').disabled = false;
    if (res.status !== 201) {
      showError(errText(res, 'Reserve'));
      return;
    }
    hold = { ...res.data, unit: pending.unit, from: pending.from, to: pending.to };
    const hours = Math.ceil((Date.parse(hold.to) - Date.parse(hold.from)) / 3600000);
    $('hold-locker').textContent = hold.locker;
    $('hold-unit').textContent = hold.unit;
    $('price').textContent = money(hours * PRICE_CENTS_PER_HOUR);
    startTimer();
    views('hold');
    loadList();
  }

  // ---- the hold's countdown ---------------------------------------------
  function tick() {
    if (!hold) return;
    const left = Math.max(0, Date.parse(hold.hold_expires_at) - Date.now());
    const s = Math.floor(left / 1000);
    $('countdown').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    $('countdown').dataset.ms = String(left);
    if (left <= 0) {
      stopTimer();
      $('pay').disabled = true;
      showError('The hold expired. Please reserve again.');
    }
  }

  function startTimer() {
    stopTimer();
    $('pay').disabled = false;
    tick();
    timer = setInterval(tick, 1000);
  }

  function stopTimer() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  // ---- payment (simulated) and confirm -----------------------------------
  async function pay(ev) {
    ev.preventDefault();
    if (!hold) return;
    showError('');
    const digits = $('card').value.replace(/\s+/g, '');
    if (!/^[0-9]{12,19}$/.test(digits)) {
      showError('Enter a card number (12–19 digits).');
      return;
    }
    $('pay').disabled = true;
    const res = await api('POST', `/v1/reservations/${encodeURIComponent(hold.id)}/confirm`);
    if (res.status !== 200) {
      $('pay').disabled = false;
      showError(errText(res, 'Confirm'));
      return;
    }
    stopTimer();
    $('done-locker').textContent = res.data.locker;
    $('done-window').textContent = `${fmt(hold.from)} – ${fmt(hold.to)}, ${money(res.data.amount_cents)}`;
    $('code').textContent = res.data.code;
    $('done-view').dataset.id = hold.id;
    hold = null;
    views('done');
    loadList();
  }

  async function cancel(id) {
    showError('');
    const res = await api('POST', `/v1/reservations/${encodeURIComponent(id)}/cancel`);
    if (res.status !== 200) {
      showError(errText(res, 'Cancel'));
      return false;
    }
    if (hold && hold.id === id) {
      hold = null;
      stopTimer();
      views('book');
    }
    await loadList();
    return true;
  }

  // ---- my reservations -----------------------------------------------------
  async function loadList() {
    const q = lastPosition ? `?min_position=${lastPosition}` : '';
    const res = await api('GET', '/v1/reservations' + q);
    const ul = $('list');
    if (res.status !== 200) {
      showError(errText(res, 'Reservations'));
      return;
    }
    ul.textContent = '';
    if (!res.data.reservations.length) {
      const li = document.createElement('li');
      li.className = 'note';
      li.textContent = 'No reservations yet.';
      ul.appendChild(li);
    }
    for (const r of res.data.reservations) {
      const li = document.createElement('li');
      li.dataset.id = r.id;
      li.dataset.status = r.status;
      const st = document.createElement('span');
      st.className = 'status ' + r.status;
      st.textContent = r.status;
      const what = document.createElement('div');
      what.textContent = `${r.unit} · locker ${r.locker} (${r.size}) · ${fmt(r.from)} – ${fmt(r.to)}`;
      li.append(st, what);
      if (r.status === 'confirmed' && r.code) {
        const c = document.createElement('div');
        c.className = 'code';
        c.textContent = r.code;
        li.appendChild(c);
      }
      if (r.status === 'held' || r.status === 'confirmed') {
        const b = document.createElement('button');
        b.className = 'cancel';
        b.textContent = 'Cancel';
        b.addEventListener('click', () => cancel(r.id));
        li.appendChild(b);
      }
      ul.appendChild(li);
    }
  }

  // ---- wiring ------------------------------------------------------------
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('search-form').addEventListener('submit', check);
  $('reserve').addEventListener('click', reserve);
  $('pay-form').addEventListener('submit', pay);
  $('hold-cancel').addEventListener('click', () => hold && cancel(hold.id));
  $('again').addEventListener('click', () => {
    $('reserve').hidden = true;
    $('availability').textContent = '';
    views('book');
  });
  $('refresh').addEventListener('click', loadList);
  $('from').value = defaultFrom();
  const qs = new URLSearchParams(location.search);
  $('unit').value = qs.get('unit') || recentUnits()[0] || '';
  fillRecent();
  views(token ? 'book' : 'login');
  if (token) loadList();
})();
