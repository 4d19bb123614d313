// The browser half of test/browser (run by browser_test.go, which sets the
// environment): drives the web UI in headless Chromium with playwright-core
// and checks what a person would see. Prints one line per step and
// "screenshot: <path>" per screenshot; exits non-zero on the first failed
// check.
//
// Environment: MUSUBI_URL (the page), MUSUBI_TOKEN (a provider token),
// MUSUBI_VC (the VC to reserve), MUSUBI_ARTIFACTS (screenshot directory),
// CHROMIUM (executable), CHROMIUM_PROFILE (a new empty directory),
// PLAYWRIGHT_DIR (holds node_modules/playwright-core).
import { createRequire } from 'node:module';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('MUSUBI_URL');
const tok = env('MUSUBI_TOKEN');
const vc = env('MUSUBI_VC');
const arts = env('MUSUBI_ARTIFACTS');
const require = createRequire(path.join(env('PLAYWRIGHT_DIR'), 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');

const T = 30000; // per wait
const origin = new URL(base).origin;
const external = [];
const pageErrors = [];
let shots = 0;

function step(msg) {
  console.log(msg);
}

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

async function shot(page, name) {
  shots++;
  const p = path.join(arts, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: p, fullPage: true });
  console.log(`screenshot: ${p}`);
}

/** Waits until fn (run in the page with arg) returns a truthy value, and returns it. */
async function until(page, what, fn, arg) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout: T, polling: 100 });
    return await h.jsonValue();
  } catch (e) {
    await shot(page, `failed-${what.replace(/\W+/g, '-')}`).catch(() => {});
    throw new Error(`waiting for ${what}: ${e.message.split('\n')[0]}`);
  }
}

const text = (page, sel) => page.locator(sel).innerText();

async function main() {
  const ctx = await chromium.launchPersistentContext(env('CHROMIUM_PROFILE'), {
    executablePath: env('CHROMIUM'),
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 860 },
    locale: 'en-GB',
    timezoneId: 'Asia/Tokyo',
  });
  try {
    // Nothing may leave the peer's origin (the network is closed, and the
    // UI promises no external resources).
    await ctx.route('**/*', (route) => {
      const u = route.request().url();
      if (new URL(u).origin !== origin && !u.startsWith('data:')) {
        external.push(u);
        return route.abort();
      }
      return route.continue();
    });
    const page = ctx.pages()[0] || (await ctx.newPage());
    page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // Chromium logs every 4xx answer to fetch as a console error; the
      // test provokes 401 and 409 on purpose.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(`console: ${m.text()}`);
    });
    step(`chromium ${ctx.browser() ? ctx.browser().version() : ''} opened ${base}`);
    await page.goto(base);

    // 1. The login prompt; a wrong token is refused with the API's message.
    await page.locator('#login').waitFor({ state: 'visible', timeout: T });
    check(await page.locator('#nav').isHidden(), 'navigation hidden before sign-in');
    await page.getByLabel('API token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await until(page, 'the refusal of a wrong token', () => /invalid token/.test(document.querySelector('#login-error').textContent));
    step(`wrong token refused: ${await text(page, '#login-error')}`);
    await shot(page, 'login-refused');

    // 2. Sign in; the overlay map shows three sites and three links.
    await page.getByLabel('API token').fill(tok);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#view-overlay').waitFor({ state: 'visible', timeout: T });
    check((await page.evaluate(() => sessionStorage.getItem('musubi.token'))) !== null, 'token kept in sessionStorage');
    await until(page, 'the map', () => document.querySelectorAll('#map g.site').length === 3 && document.querySelectorAll('#map g.link').length === 3);
    const links = await page.$$eval('#map g.link', (gs) => gs.map((g) => `${g.dataset.link}:${g.dataset.state}`).sort());
    check(JSON.stringify(links) === JSON.stringify(['osaka~sendai:up', 'osaka~tokyo:up', 'sendai~tokyo:down']), `links ${links}`);
    const costs = await page.$$eval('#map text.cost', (ts) => ts.map((t) => `${t.dataset.link}=${t.textContent}`).sort());
    check(costs.includes('osaka~tokyo=1.2 ms') && costs.includes('sendai~tokyo=4.5 ms · down'), `cost labels ${costs}`);
    const sites = await page.$$eval('#map g.site', (gs) => gs.map((g) => `${g.dataset.site}:${g.classList.contains('live') ? 'live' : 'offline'}`).sort());
    check(JSON.stringify(sites) === JSON.stringify(['osaka:live', 'sendai:live', 'tokyo:live']), `sites ${sites}`);
    check((await page.locator('#links-table tbody tr').count()) === 3, 'links table has 3 rows');
    const peer = await text(page, '#peer');
    check(/osaka/.test(peer) && /ready/.test(peer), `header names the peer: ${peer}`);
    step(`overlay: sites ${sites.join(' ')}; links ${costs.join(' ')}; header "${peer.replace(/\s+/g, ' ')}"`);
    await shot(page, 'overlay');

    // 3. Reserve through the form; the Gantt chart shows the VC's bars.
    await page.getByRole('link', { name: 'Timetable' }).click();
    await page.locator('#view-timetable').waitFor({ state: 'visible', timeout: T });
    await until(page, "the earlier reservation's bar", () => document.querySelector('#gantt g.bar[data-vc="batch"]') !== null);
    const form = page.locator('#reserve-form');
    await form.getByLabel('VC name').fill(vc);
    await form.getByLabel('Nodes', { exact: true }).fill('3');
    await form.getByLabel('Memory per node (MiB)').fill('2048');
    await form.getByLabel('vCPUs per node').fill('2');
    await form.getByLabel('Placement policy').selectOption('spread');
    await page.getByRole('button', { name: 'Start now, 2 hours' }).click();
    const win = [await form.getByLabel('Window start').inputValue(), await form.getByLabel('Window end').inputValue()];
    step(`reserving ${vc}: 3 nodes x 2048 MiB, 2 vCPUs, spread, window ${win.join(' to ')}`);
    await page.getByRole('button', { name: 'Reserve', exact: true }).click();
    await until(page, 'the confirmation', (v) => document.querySelector('#reserve-ok').textContent.includes(`Reserved ${v}`), vc);
    step(`confirmation: ${await text(page, '#reserve-ok')}`);
    const bars = await until(
      page,
      `the Gantt bars of ${vc}`,
      (v) => {
        const bs = [...document.querySelectorAll(`#gantt g.bar[data-vc="${v}"]`)];
        return bs.length === 3 && bs.map((b) => `${b.closest('g.row').dataset.row}:${b.querySelector('text').textContent}:${b.getAttribute('class')}`);
      },
      vc,
    );
    check(bars.every((b) => b.includes(`:${vc}:`)), `bars are labelled with the VC name: ${bars}`);
    check((await page.locator('#gantt g.now line').count()) === 1, 'the now-line is drawn');
    step(`gantt: ${bars.join(' ')}`);
    await page.locator('#gantt-controls').getByLabel('per VC').check();
    await until(page, 'one row per VC', (v) => document.querySelectorAll(`#gantt g.row[data-row="${v}"] g.bar`).length === 1, vc);
    await shot(page, 'timetable');
    await page.locator('#gantt-controls').getByLabel('per host').check();

    // 4. An impossible request is refused with its binding constraint.
    await form.getByLabel('VC name').fill('toobig');
    await form.getByLabel('Nodes', { exact: true }).fill('2');
    await form.getByLabel('Memory per node (MiB)').fill('999999');
    await page.getByRole('button', { name: 'Reserve', exact: true }).click();
    await page.locator('#reserve-error').waitFor({ state: 'visible', timeout: T });
    const refusal = await text(page, '#reserve-error');
    check(/^Refused: memory: /.test(refusal) && /binding constraint\s+memory/.test(refusal), `refusal names the constraint: ${refusal}`);
    check((await page.locator('#gantt g.bar[data-vc="toobig"]').count()) === 0, 'no bar for a refused VC');
    step(`refusal shown: ${refusal.replace(/\s+/g, ' ')}`);
    await page.locator('#reserve-error').scrollIntoViewIfNeeded();
    await shot(page, 'refused');

    // 5. The VC list shows it, then ready; its nodes are running.
    await page.getByRole('link', { name: 'Virtual clusters' }).click();
    await page.locator('#view-vcs').waitFor({ state: 'visible', timeout: T });
    const first = await until(page, `${vc} in the list`, (v) => {
      const td = document.querySelector(`#vc-table tr[data-vc="${v}"] td.phase`);
      return td && td.textContent;
    }, vc);
    step(`${vc} listed as ${first}`);
    await until(page, `${vc} ready`, (v) => {
      const td = document.querySelector(`#vc-table tr[data-vc="${v}"] td.phase`);
      return td && td.textContent === 'ready';
    }, vc);
    const row = await text(page, `#vc-table tr[data-vc="${vc}"]`);
    check(/3 \/ 3/.test(row) && /alice/.test(row), `row: ${row}`);
    step(`${vc} row: ${row.replace(/\s+/g, ' ')}`);
    await page.getByRole('link', { name: `${vc}: show its nodes` }).click();
    const nodes = await until(page, `the nodes of ${vc}`, () => {
      const rs = [...document.querySelectorAll('#nodes-table tbody tr[data-node]')];
      return rs.length === 3 && rs.every((r) => /running/.test(r.textContent)) && rs.map((r) => r.innerText.replace(/\s+/g, ' '));
    });
    step(`nodes: ${nodes.join(' | ')}`);
    check((await page.locator('#vc-table tr[data-vc="batch"] td.phase').innerText()) === 'scheduled', 'the later VC is scheduled');
    await shot(page, 'vcs');

    // 6. Jobs of the VC.
    await page.getByRole('link', { name: `jobs of ${vc}` }).click();
    await page.locator('#view-jobs').waitFor({ state: 'visible', timeout: T });
    const jobs = await until(page, `the jobs of ${vc}`, () => {
      const rs = [...document.querySelectorAll('#jobs-table tbody tr[data-job]')];
      return rs.length === 2 && rs.map((r) => [...r.children].map((c) => c.textContent).join(' '));
    });
    check(/dock alice qw 1/.test(jobs[0]) && /screen alice qw 1 1-100:1/.test(jobs[1]), `jobs ${jobs}`);
    check((await page.locator('#jobs-vc').inputValue()) === vc, 'the VC selector shows the VC');
    step(`jobs: ${jobs.join(' | ')}`);
    await shot(page, 'jobs');

    // 7. A token the peer no longer accepts: 401 brings the prompt back.
    await page.evaluate(() => sessionStorage.setItem('musubi.token', 'revoked-token'));
    await page.reload();
    await page.locator('#login').waitFor({ state: 'visible', timeout: T });
    await until(page, 'the reason', () => /invalid token/.test(document.querySelector('#login-error').textContent));
    check((await page.evaluate(() => sessionStorage.getItem('musubi.token'))) === null, 'the rejected token is forgotten');
    check(await page.locator('#view-jobs').isHidden(), 'views hidden after 401');
    step(`after a 401: ${await text(page, '#login-error')}`);
    await shot(page, 'token-rejected');

    check(external.length === 0, `requests outside ${origin}: ${external.join(', ')}`);
    check(pageErrors.length === 0, `errors in the page: ${pageErrors.join('; ')}`);
    step('ok: no request left the origin, no error in the page');
  } finally {
    await ctx.close();
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  if (pageErrors.length) console.error(pageErrors.join('\n'));
  process.exit(1);
});
