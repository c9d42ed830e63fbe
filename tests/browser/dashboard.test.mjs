// dashboard.test.mjs — drives Debian's chromium (playwright-core) against a
// real hub + sim that the caller started (tests/e2e/test_browser_dashboard.py).
//
// env: HUB_URL       base URL of the hub (http://127.0.0.1:PORT)
//      ADMIN_TOKEN   its admin token
//      SCREENSHOT    where to save the screenshot (PNG)
//      CHROMIUM      browser binary (default /usr/bin/chromium)
//      LF_TIMEOUT_MS bound of each wait (default 60000)
//
// Checks: sign-in (a wrong token is refused, the right one is kept in
// sessionStorage only), the table lists the hub's units, an offline unit
// shows "Offline", filtering by online/offline and by name, sorting, the
// unit detail view, the live stream connects. Prints one line per check and
// "N passed, N failed"; exits 1 if any failed.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HUB_URL = (process.env.HUB_URL || '').replace(/\/$/, '');
const TOKEN = process.env.ADMIN_TOKEN || '';
const SHOT = process.env.SCREENSHOT || path.resolve('dashboard.png');
const TIMEOUT = Number(process.env.LF_TIMEOUT_MS || 60000);
if (!HUB_URL || !TOKEN) {
  console.error('dashboard.test: set HUB_URL and ADMIN_TOKEN');
  process.exit(2);
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split('\n')[0] : e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function apiUnits(query) {
  const r = await fetch(`${HUB_URL}/v1/units?${query}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert(r.ok, `GET /v1/units?${query}: HTTP ${r.status}`);
  return (await r.json()).units;
}

// Rows of the units table as {name, online, status}.
const tableRows = (page) => page.$$eval('#units-body tr[data-unit]', (trs) => trs.map((tr) => ({
  name: tr.dataset.unit,
  online: tr.dataset.online,
  status: tr.querySelector('[data-col="status"]').textContent.trim(),
})));

const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lf-chromium-'));
let ctx = null;
let exitCode = 1;
try {
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  ctx.setDefaultTimeout(TIMEOUT);
  const page = ctx.pages()[0] || await ctx.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  const hubUnits = await apiUnits('limit=1000');
  const hubOffline = await apiUnits('online=false&limit=1000');
  console.log(`hub lists ${hubUnits.length} units, ${hubOffline.length} offline`);

  await check('page loads and asks for the token; first paint is fast', async () => {
    await page.goto(`${HUB_URL}/`);
    await page.waitForSelector('#login:not([hidden]) #token-input');
    const fcp = await page.evaluate(() => {
      const e = performance.getEntriesByName('first-contentful-paint')[0];
      return e ? e.startTime : null;
    });
    console.log(`     first contentful paint: ${fcp == null ? 'n/a' : fcp.toFixed(0) + ' ms'}`);
    assert(fcp == null || fcp < 5000, `first paint took ${fcp} ms`); // generous: a loaded CI box
  });

  await check('a wrong token is refused', async () => {
    await page.fill('#token-input', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
    assert(!(await page.isHidden('#login')), 'login overlay went away with a wrong token');
    const kept = await page.evaluate(() => sessionStorage.length);
    assert(kept === 0, 'a wrong token was stored');
  });

  await check('the admin token signs in and is kept in sessionStorage only', async () => {
    await page.fill('#token-input', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login', { state: 'hidden' });
    const st = await page.evaluate(() => ({
      session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
      local: localStorage.length,
      cookie: document.cookie,
    }));
    assert(st.session.includes(TOKEN), 'token not in sessionStorage');
    assert(st.local === 0 && !st.cookie.includes(TOKEN), 'token leaked to localStorage/cookies');
  });

  await check('the table lists the simulated units', async () => {
    await page.selectOption('#page-size', '200');
    const want = hubUnits.slice(0, 200).map((u) => u.name);
    await page.waitForFunction((names) => {
      const got = new Set([...document.querySelectorAll('#units-body tr[data-unit]')].map((r) => r.dataset.unit));
      return names.every((n) => got.has(n));
    }, want);
    const rows = await tableRows(page);
    assert(rows.length >= Math.min(hubUnits.length, 200), `only ${rows.length} rows`);
  });

  await check('an offline unit shows "Offline"', async () => {
    await page.waitForFunction(() => [...document.querySelectorAll('#units-body tr[data-online="false"]')]
      .some((r) => /^Offline/.test(r.querySelector('[data-col="status"]').textContent.trim())));
    const rows = await tableRows(page);
    const off = rows.filter((r) => r.online === 'false');
    assert(off.every((r) => r.status.startsWith('Offline')), 'an offline row does not say Offline');
    const on = rows.filter((r) => r.online === 'true');
    assert(on.every((r) => !r.status.startsWith('Offline')), 'an online row says Offline');
  });

  await check('counts online/offline are shown', async () => {
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById('count-offline').textContent) &&
      /^\d+$/.test(document.getElementById('count-online').textContent));
    await page.waitForFunction((n) => Number(document.getElementById('count-total').textContent) === n,
      hubUnits.length).catch(async () => {
      throw new Error(`count-total ${await page.textContent('#count-total')}, hub has ${hubUnits.length}`);
    });
  });

  await check('filter: offline only', async () => {
    await page.selectOption('#filter-online', 'false');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#units-body tr[data-unit]')];
      return rows.length > 0 && rows.every((r) => r.dataset.online === 'false');
    });
    const rows = await tableRows(page);
    assert(rows.every((r) => r.status.startsWith('Offline')), 'a row in the offline filter is not Offline');
  });

  await check('filter: online only', async () => {
    await page.selectOption('#filter-online', 'true');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#units-body tr[data-unit]')];
      return rows.length > 0 && rows.every((r) => r.dataset.online === 'true');
    });
    await page.selectOption('#filter-online', '');
  });

  await check('filter: name substring', async () => {
    const target = hubUnits[Math.floor(hubUnits.length / 2)].name;
    const needle = target.slice(-4);
    const expect = hubUnits.filter((u) => u.name.includes(needle) ||
      String(u.display_name || '').toLowerCase().includes(needle.toLowerCase())).map((u) => u.name);
    await page.fill('#filter-name', needle);
    await page.waitForFunction(({ target: t, n }) => {
      const rows = [...document.querySelectorAll('#units-body tr[data-unit]')];
      return rows.some((r) => r.dataset.unit === t) && rows.length <= n;
    }, { target, n: expect.length });
    const rows = await tableRows(page);
    for (const r of rows) assert(expect.includes(r.name), `${r.name} does not match "${needle}"`);
    await page.fill('#filter-name', 'no-such-unit-zzz');
    await page.waitForSelector('#units-body tr.empty');
    await page.fill('#filter-name', '');
    await page.waitForFunction((n) => document.querySelectorAll('#units-body tr[data-unit]').length >= n,
      Math.min(hubUnits.length, 200));
  });

  await check('sort by name, descending', async () => {
    await page.click('#units-table th[data-sort="name"]');
    await page.waitForSelector('#units-table th[data-sort="name"][aria-sort="descending"]');
    await page.waitForFunction(() => {
      const n = [...document.querySelectorAll('#units-body tr[data-unit]')].map((r) => r.dataset.unit);
      return n.length > 1 && n.every((x, i) => i === 0 || n[i - 1] >= x);
    });
    await page.click('#units-table th[data-sort="name"]');
    await page.waitForSelector('#units-table th[data-sort="name"][aria-sort="ascending"]');
  });

  await check('server-side paging: next and previous pages', async () => {
    await page.selectOption('#page-size', '25');
    await page.waitForFunction(() => document.querySelectorAll('#units-body tr[data-unit]').length === 25);
    const first = (await tableRows(page)).map((r) => r.name);
    assert(hubUnits.length > 25, 'needs more than 25 units');
    await page.click('#page-next');
    await page.waitForFunction((f) => {
      const n = [...document.querySelectorAll('#units-body tr[data-unit]')].map((r) => r.dataset.unit);
      return n.length > 0 && !n.includes(f);
    }, first[0]);
    const second = (await tableRows(page)).map((r) => r.name);
    const want = hubUnits.slice(25, 50).map((u) => u.name);
    assert(JSON.stringify(second) === JSON.stringify(want), `page 2 is ${second[0]}..., want ${want[0]}...`);
    await page.click('#page-prev');
    await page.waitForFunction((f) => document.querySelector('#units-body tr[data-unit]').dataset.unit === f,
      first[0]);
    await page.selectOption('#page-size', '200');
    await page.waitForFunction((n) => document.querySelectorAll('#units-body tr[data-unit]').length >= n,
      Math.min(hubUnits.length, 200));
  });

  await check('sort by last response puts offline units last', async () => {
    await page.click('#units-table th[data-sort="last_response_ms"]');
    await page.waitForSelector('#units-table th[data-sort="last_response_ms"][aria-sort="ascending"]');
    await page.waitForFunction(() => {
      const on = [...document.querySelectorAll('#units-body tr[data-unit]')].map((r) => r.dataset.online);
      const firstOff = on.indexOf('false');
      return firstOff > 0 && on.slice(firstOff).every((x) => x !== 'true');
    });
    await page.click('#units-table th[data-sort="name"]');
    await page.waitForSelector('#units-table th[data-sort="name"][aria-sort="ascending"]');
  });

  await check('projections are listed and one can be rebuilt', async () => {
    await page.waitForSelector('#projections-body tr[data-projection="units"] button[data-rebuild]');
    page.once('dialog', (d) => d.accept());
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/v1/projections/units/rebuild')),
      page.click('#projections-body button[data-rebuild="units"]'),
    ]);
    assert(resp.status() === 202, `rebuild answered ${resp.status()}`);
    await page.waitForFunction(() => {
      const tr = document.querySelector('#projections-body tr[data-projection="units"]');
      return tr && tr.querySelector('[data-col="state"]').textContent.trim() === 'live';
    });
  });

  await check('the live event stream connects', async () => {
    await page.waitForSelector('#live-status[data-state="open"]');
  });

  await check('unit detail view', async () => {
    const name = (await tableRows(page))[0].name;
    await page.click(`#units-body tr[data-unit="${name}"] a`);
    await page.waitForSelector(`#unit-detail[data-unit="${name}"][data-loading="false"]`);
    const title = await page.textContent('#unit-title');
    assert(title === name, `detail title "${title}"`);
    await page.click('#view-unit a[href="#/"]');
    await page.waitForSelector('#view-fleet:not([hidden])');
  });

  await check('screenshot saved', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#units-body tr[data-unit]').length > 0);
    await page.waitForTimeout(2500); /* let the chart gather a few seconds */
    fs.mkdirSync(path.dirname(SHOT), { recursive: true });
    await page.screenshot({ path: SHOT });
    assert(fs.statSync(SHOT).size > 10000, 'screenshot suspiciously small');
    console.log(`     screenshot: ${SHOT}`);
  });

  await check('no uncaught errors in the page', async () => {
    assert(pageErrors.length === 0, pageErrors.join('; '));
  });
  exitCode = failed ? 1 : 0;
} catch (e) {
  console.log(`FAIL setup: ${e && e.stack ? e.stack : e}`);
  failed++;
} finally {
  if (ctx) await ctx.close().catch(() => {});
  fs.rmSync(userDir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(exitCode);
