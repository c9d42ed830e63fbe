// app.test.mjs — the customer app (/app) in Debian's chromium (playwright-core)
// against a real hub the caller started (tests/e2e/test_browser_app.py).
//
// env: HUB_URL, USER_TOKEN (a user's token), UNIT (a registered unit with a
//      free S locker), SCREENSHOT (PNG path), CHROMIUM, LF_TIMEOUT_MS
//
// A phone-sized viewport: a wrong token is refused; the user signs in,
// checks availability, reserves (the hold's countdown runs), pays (the
// simulated step) and gets the booking code; the reservation shows in the
// list as confirmed and, through the API, is confirmed with the same code
// and locker; a second hold is cancelled from the list. Prints one line
// per check and "N passed, N failed"; exits 1 if any failed.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const HUB_URL = (process.env.HUB_URL || '').replace(/\/$/, '');
const TOKEN = process.env.USER_TOKEN || '';
const UNIT = process.env.UNIT || '';
const SHOT = process.env.SCREENSHOT || path.resolve('app.png');
const TIMEOUT = Number(process.env.LF_TIMEOUT_MS || 60000);
if (!HUB_URL || !TOKEN || !UNIT) {
  console.error('app.test: set HUB_URL, USER_TOKEN and UNIT');
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
async function apiGet(p) {
  const r = await fetch(HUB_URL + p, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert(r.ok, `GET ${p}: HTTP ${r.status}`);
  return r.json();
}

const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lf-chromium-app-'));
let ctx = null;
let confirmedId = null;
let shownCode = null;
try {
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  ctx.setDefaultTimeout(TIMEOUT);
  const page = ctx.pages()[0] || await ctx.newPage();
  const pageErrors = [];
  const external = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    if (!r.url().startsWith(HUB_URL)) external.push(r.url());
  });

  await check('/app loads, asks for a token, uses no external asset', async () => {
    await page.goto(`${HUB_URL}/app`);
    await page.waitForSelector('#login-view:not([hidden]) #token');
    assert(external.length === 0, 'external requests: ' + external.join(' '));
  });

  await check('a wrong token is refused', async () => {
    await page.fill('#token', 'not-a-token');
    await page.click('#login');
    await page.waitForSelector('#error:not([hidden])');
    assert(!(await page.isHidden('#login-view')), 'signed in with a wrong token');
    assert(await page.evaluate(() => sessionStorage.length) === 0, 'a wrong token was stored');
  });

  await check('the user signs in (token in sessionStorage only)', async () => {
    await page.fill('#token', TOKEN);
    await page.click('#login');
    await page.waitForSelector('#book-view:not([hidden])');
    const st = await page.evaluate(() => ({
      session: Object.values(sessionStorage), local: JSON.stringify(localStorage), cookie: document.cookie,
    }));
    assert(st.session.includes(TOKEN), 'token not in sessionStorage');
    assert(!st.local.includes(TOKEN) && !st.cookie.includes(TOKEN), 'token leaked');
  });

  await check('availability for a unit, size and window', async () => {
    await page.fill('#unit', UNIT);
    await page.check('input[name="size"][value="S"]');
    await page.fill('#hours', '2');
    await page.click('#check');
    await page.waitForSelector('#reserve:not([hidden])');
    const free = Number(await page.getAttribute('#availability', 'data-free'));
    assert(free >= 1, `free = ${free}`);
  });

  await check('reserve: a hold with a running countdown', async () => {
    await page.click('#reserve');
    await page.waitForSelector('#hold-view:not([hidden])');
    const a = Number(await page.getAttribute('#countdown', 'data-ms'));
    await page.waitForTimeout(1200);
    const b = Number(await page.getAttribute('#countdown', 'data-ms'));
    assert(a > 0 && b < a, `countdown not running: ${a} then ${b}`);
    assert(/^\d+:\d\d$/.test(await page.textContent('#countdown')), 'countdown text');
  });

  await check('pay (simulated) and confirm: the code is shown', async () => {
    await page.fill('#card', '4242 4242 4242 4242');
    await page.click('#pay');
    await page.waitForSelector('#done-view:not([hidden])');
    shownCode = (await page.textContent('#code')).trim();
    confirmedId = await page.getAttribute('#done-view', 'data-id');
    assert(/^LF1[A-Za-z0-9_-]+$/.test(shownCode), `code: ${shownCode}`);
    await page.screenshot({ path: SHOT, fullPage: true });
  });

  await check('the API has the reservation confirmed with the same code', async () => {
    const r = await apiGet(`/v1/reservations/${confirmedId}`);
    assert(r.status === 'confirmed', `status ${r.status}`);
    assert(r.unit === UNIT && r.size === 'S', JSON.stringify(r));
    assert(r.code === shownCode, 'code differs from the one shown');
    assert(await page.textContent('#done-locker') === r.locker, 'locker differs');
  });

  await check('the list shows it confirmed', async () => {
    await page.waitForSelector(`#list li[data-id="${confirmedId}"][data-status="confirmed"]`);
  });

  await check('a second hold is cancelled from the list', async () => {
    await page.click('#again');
    await page.click('#check');
    await page.waitForSelector('#reserve:not([hidden])');
    await page.click('#reserve');
    await page.waitForSelector('#hold-view:not([hidden])');
    const list = await apiGet('/v1/reservations');
    const held = list.reservations.find((r) => r.status === 'held');
    assert(held, 'no held reservation in the API');
    await page.waitForSelector(`#list li[data-id="${held.id}"] button.cancel`);
    await page.click(`#list li[data-id="${held.id}"] button.cancel`);
    await page.waitForSelector(`#list li[data-id="${held.id}"][data-status="cancelled"]`);
    const r = await apiGet(`/v1/reservations/${held.id}`);
    assert(r.status === 'cancelled', `API status ${r.status}`);
  });

  await check('no script errors', async () => {
    assert(pageErrors.length === 0, pageErrors.join('; '));
  });
} catch (e) {
  failed++;
  console.log(`FAIL browser: ${e.message}`);
} finally {
  if (ctx) await ctx.close();
  fs.rmSync(userDir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
