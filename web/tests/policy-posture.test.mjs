// The Policy and Posture views against the real binary: the admin-endpoint scenario
// (`eastwest gen`) replayed into `eastwest serve`, as tests/tests/policy.rs does. The
// Policy view reads the newest baseline snapshot, which `serve` writes on a timer
// (`[storage] snapshot_interval`, 5m by default) and at shutdown — not when learning
// ends — so the server snapshots every second here, and flushes its Parquet history
// (what the backtest and the posture read) every second too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, openPage, runEastwest, screenshot, startEastwest, waitFor } from './harness.mjs';

let server, browser, scenarioDir, alert;

before(async () => {
  scenarioDir = mkdtempSync(join(tmpdir(), 'eastwest-policy-'));
  await runEastwest(['gen', 'admin-endpoint', '--learning', '30m', '--attack', '10m', '--out', scenarioDir]);
  server = await startEastwest({
    learningPeriod: '20m',
    config: '[storage]\nsnapshot_interval = "1s"\nhistory_flush_interval = "1s"\n',
  });
  browser = await launchBrowser();
  await runEastwest(['replay', scenarioDir, '--to', `${server.otlp}/v1/traces`, '--quiet']);
  alert = await waitFor('the sensitive-endpoint alert', async () =>
    (await server.get('/api/v1/alerts?kind=sensitive_endpoint')).alerts[0], 90000, 1000);
  // A snapshot exists once the policy endpoint stops answering 404.
  await waitFor('a baseline snapshot', async () => (await fetch(`${server.base}/api/v1/policy?format=istio`)).ok, 30000, 500);
  await waitFor('a blast_radius finding over the flushed history', async () =>
    (await server.get('/api/v1/posture')).findings.some((f) => f.kind === 'blast_radius'), 30000, 500);
});

after(async () => {
  if (process.env.EASTWEST_TEST_LOG) console.error(server?.log());
  await browser?.close();
  await server?.stop();
  if (scenarioDir) rmSync(scenarioDir, { recursive: true, force: true });
});

test('policy view: istio YAML as text, Download gives the same text, backtest blocks the alert', async () => {
  const { page, context, events } = await openPage(browser, server.base);
  await page.goto(`${server.base}/#/policy`);
  await page.waitForSelector('main[data-ready="policy"]');
  assert.equal(await page.locator('nav a.active').textContent(), 'Policy');
  // Another dialect first, then istio picked from the list.
  await page.selectOption('#policy-format', 'cilium');
  await page.waitForSelector('#policy-yaml[data-format="cilium"]');
  assert.match(await page.locator('#policy-yaml').textContent(), /kind: CiliumNetworkPolicy/);
  await page.selectOption('#policy-format', 'istio');
  await page.waitForSelector('#policy-yaml[data-format="istio"]');
  assert.match(await page.evaluate(() => location.hash), /format=istio/);
  const shown = await page.locator('#policy-yaml').textContent();
  assert.match(shown, /kind: AuthorizationPolicy/);
  assert.equal(await page.locator('#policy-yaml *').count(), 0, 'the YAML is one text node, no markup');
  await screenshot(page, 'policy');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#policy-download')]);
  assert.equal(download.suggestedFilename(), 'eastwest-istio.yaml');
  assert.equal(readFileSync(await download.path(), 'utf8'), shown, 'the file is the YAML shown');

  // The generated policy leaves the open alert's call out: replayed, it would be denied.
  // The backtest reads the Parquet history, which the attack's hour reaches on the
  // writer's next flush: run it again until the call is there.
  await page.click('#backtest-use');
  let denied = [];
  await waitFor(`the alert's call (${alert.route}) among the denied rows`, async () => {
    await page.click('#backtest-run');
    await page.waitForSelector('#backtest-result .backtest-report');
    denied = await page.locator('#backtest-denied tr.denied').allTextContents();
    return denied.some((row) => row.includes(alert.route));
  }, 30000, 1000);
  assert.ok(Number(await page.locator('#backtest-blocked-alerts').textContent()) >= 1, 'the alert would be blocked');
  assert.ok(denied.some((row) => row.includes(alert.route)), `denied rows name ${alert.route}: ${denied}`);

  // A policy the server cannot read: its error is shown, not a blank.
  await page.fill('#backtest-yaml', 'kind: Pod\napiVersion: v1\n');
  await page.click('#backtest-run');
  await page.waitForSelector('.backtest > .error[role=alert]');
  assert.match(await page.locator('.backtest > .error').textContent(), /^Backtest failed: .+/);

  assert.deepEqual(events.external.filter((u) => !u.startsWith('blob:')), []);
  assert.deepEqual(events.errors, []);
  await context.close();
});

test('before the first snapshot the policy view shows the server\'s 404 message, not a blank', async (t) => {
  const fresh = await startEastwest();
  t.after(() => fresh.stop());
  const { page, context, events } = await openPage(browser, fresh.base);
  await page.goto(`${fresh.base}/#/policy?format=linkerd&namespace=shop`);
  await page.waitForSelector('main[data-ready="policy"]');
  assert.equal(await page.locator('#policy-format').inputValue(), 'linkerd');
  assert.equal(await page.locator('#policy-namespace').inputValue(), 'shop');
  const error = page.locator('.policy-output > .error[role=alert]');
  assert.match(await error.textContent(), /^Loading the policy failed: .*no baseline snapshot/);
  assert.equal(await page.locator('#policy-yaml').textContent(), '');
  assert.ok(await page.locator('#policy-download').isDisabled());
  assert.deepEqual(events.errors, []);
  await context.close();
});

test('posture view: ranked findings with a blast_radius row, the summary and the report link', async () => {
  const { page, context, events } = await openPage(browser, server.base);
  await page.goto(`${server.base}/#/posture`);
  await page.waitForSelector('main[data-ready="posture"]');
  assert.ok(await page.locator('#posture-findings tr.finding[data-kind="blast_radius"]').count() >= 1, 'a blast_radius finding row');
  const ranks = await page.locator('#posture-findings tr.finding td:first-child').allTextContents();
  assert.deepEqual(ranks.map(Number), ranks.map((_, i) => i + 1), 'ranked from 1');
  assert.ok(await page.locator('#posture-blast tr.blast').count() >= 1, 'blast-radius table');
  const link = page.locator('#report-link');
  assert.equal(await link.getAttribute('href'), '/api/v1/report?format=html');
  assert.equal(await link.getAttribute('target'), '_blank');
  const report = await fetch(`${server.base}/api/v1/report?format=html`);
  assert.equal(report.status, 200);
  assert.match(report.headers.get('content-type'), /text\/html/);
  await screenshot(page, 'posture');
  assert.deepEqual(events.external, []);
  assert.deepEqual(events.errors, []);
  await context.close();
});

test('with an API token the report opens from a Blob URL fetched with the token', async (t) => {
  const secured = await startEastwest({ token: 'report-token' });
  t.after(() => secured.stop());
  const { page, context, events } = await openPage(browser, secured.base);
  await context.addInitScript(() => sessionStorage.setItem('eastwest.token', 'report-token'));
  await page.goto(`${secured.base}/#/posture`);
  await page.waitForSelector('main[data-ready="posture"]');
  assert.equal(await page.locator('#report-link').count(), 0, 'no link that would answer 401');
  const [popup] = await Promise.all([context.waitForEvent('page'), page.click('#report-open')]);
  await popup.waitForURL(/^blob:/);
  await popup.waitForLoadState();
  assert.ok(popup.url().startsWith(`blob:${secured.base}/`), popup.url());
  assert.match(await popup.content(), /<html/i);
  assert.doesNotMatch(await popup.locator('body').textContent(), /unauthorized/);
  assert.deepEqual(events.errors, []);
  await context.close();
});
