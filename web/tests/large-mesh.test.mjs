// The dashboard on the 1,238-service sample mesh (`eastwest gen --topology large`): the
// namespace view first, a search that jumps to a service, its neighbourhood, the
// new/alerted filter showing the attack's edges, ATT&CK tags and trace links, in both
// themes at 1280×800. The scenario is generated and replayed once for the whole file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser, openPage, runEastwest, screenshot, startEastwest, waitFor } from './harness.mjs';

const TEMPLATE = 'https://jaeger.example/trace/{trace_id}';
/** First render budget for the namespace view (the issue: "within a few seconds"). */
const FIRST_RENDER_MS = 5000;
const THEMES = ['light', 'dark'];
/** How long the server's graph and alerts must stay unchanged before the tests look. */
const SETTLED_MS = 3000;
/**
 * Event time past the last judged call after which nothing already sent can change the
 * graph or raise an alert: the baseline window (60 s) and a margin.
 */
const DRAINED_EVENT_MS = 65000;

let server, browser, scenarioDir, attacker, attackAlerts;

before(async () => {
  scenarioDir = mkdtempSync(join(tmpdir(), 'eastwest-large-'));
  // 10 minutes of learning, then a fan-out; 2 entry requests per second of event time
  // reach ~1,000 services and ~2,300 edges while staying a few seconds of replay.
  await runEastwest(['gen', 'fan-out', '--topology', 'large', '--learning', '10m', '--attack', '3m',
    '--rate', '2', '--out', scenarioDir]);
  server = await startEastwest({ learningPeriod: '10m', config: `[api]\ntrace_url_template = "${TEMPLATE}"\n` });
  browser = await launchBrowser();
  await runEastwest(['replay', scenarioDir, '--to', `${server.otlp}/v1/traces`, '--quiet']);
  const attackKinds = '/api/v1/alerts?kind=fan_out,new_edge&limit=200';
  await waitFor('the fan-out alert', async () => {
    const { alerts } = await server.get(attackKinds);
    return alerts.some((a) => a.kind === 'fan_out');
  }, 90000, 1000);
  // The replay's tail (its last seconds of event time, released as idle advance moves the
  // watermark on) still changes the graph and raises alerts after the fan-out, and windows
  // that close a baseline window after the last call can still alert. Quiet spells in that
  // tail (idle advance starts only after seconds without input) are no sign of the end,
  // so first wait until event time has passed the last call by a window and the holds
  // before it, then until graph and alerts hold still, so that what a test reads twice
  // or draws is what it asserts on.
  let calls = -1;
  let drainedAt = null;
  await waitFor('event time to pass the last call by a window', async () => {
    const stats = await server.get('/api/v1/stats');
    const watermark = Date.parse(stats.watermark ?? '') || 0;
    if (stats.calls !== calls || stats.buffered_calls > 0) {
      // A new call, or calls not yet judged: the last call is still to come.
      calls = stats.calls;
      drainedAt = null;
      return false;
    }
    // Every call so far has been judged, so none is later than this watermark.
    drainedAt ??= watermark;
    return watermark - drainedAt >= DRAINED_EVENT_MS;
  }, 180000, 1000);
  let seen = null;
  let since = Date.now();
  await waitFor('the graph and alerts to settle', async () => {
    const graph = await fetch(`${server.base}/api/v1/graph/namespaces`);
    const { alerts: now } = await server.get('/api/v1/alerts?limit=200');
    const state = `${graph.headers.get('etag')} ${now.length} ${now.map((a) => a.count).join(',')}`;
    if (state !== seen) {
      seen = state;
      since = Date.now();
      return false;
    }
    return Date.now() - since >= SETTLED_MS;
  }, 90000, 500);
  const { alerts } = await server.get(attackKinds);
  attacker = alerts.find((a) => a.kind === 'fan_out').source;
  attackAlerts = alerts.filter((a) => a.kind === 'new_edge' && a.source.service === attacker.service);
  assert.ok(attackAlerts.length >= 3, `the fan-out raised new edges: ${attackAlerts.length}`);
});

after(async () => {
  if (process.env.EASTWEST_TEST_LOG) console.error(server?.log());
  await browser?.close();
  await server?.stop();
  rmSync(scenarioDir, { recursive: true, force: true });
});

const key = (w) => `${w.service}.${w.namespace}`;
const listed = (page, selector = '.graph-view .graph-nodes li') =>
  page.locator(selector).evaluateAll((lis) => lis.map((li) => li.dataset.id));

test('the graph API answers with an ETag and 304 when nothing changed', async () => {
  const first = await fetch(`${server.base}/api/v1/graph/namespaces`);
  const etag = first.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{32}"$/);
  const again = await fetch(`${server.base}/api/v1/graph/namespaces`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  const whole = await server.get('/api/v1/graph?limit=150');
  assert.ok(whole.total_nodes >= 900, `a large mesh: ${whole.total_nodes} services`);
  assert.equal(whole.nodes.length, 150, 'a cut is limited');
  assert.ok(whole.matched_nodes > 150);
  // The large mesh speaks REST: every edge says http, none grpc.
  assert.ok(whole.edges.every((e) => e.protocols.includes('http')), 'edges carry their protocols');
  assert.equal((await server.get('/api/v1/graph?protocol=grpc')).edges.length, 0);
});

for (const theme of THEMES) {
  test(`${theme}: namespace view first, then the mesh namespace cut to what matters`, async () => {
    const { page, context, events } = await openPage(browser, server.base, { colorScheme: theme });
    const started = Date.now();
    await page.goto(`${server.base}/`);
    await page.waitForSelector('main[data-ready="graph"] .graph-nodes li[data-id="ns:mesh"]', { state: 'attached' });
    const firstRender = Date.now() - started;
    assert.ok(firstRender < FIRST_RENDER_MS, `namespace view in ${firstRender} ms`);
    assert.match(await page.locator('#graph-cut').textContent(), /namespaces, \d{3,} services/);
    await screenshot(page, `large-namespaces-${theme}`);

    await page.click('.graph-index summary');
    await page.click('.graph-nodes li[data-id="ns:mesh"] button');
    await page.waitForFunction(() => location.hash.includes('ns=mesh'));
    // Services drawn: the namespace list's own items must not satisfy the wait while the
    // cut is still being rendered.
    await page.waitForSelector('main[data-ready="graph"] .graph-nodes li[data-id]:not([data-id^="ns:"])', { state: 'attached' });
    const ids = await listed(page);
    assert.ok(ids.length <= 150 && ids.length >= 100, `${ids.length} services drawn, not a thousand`);
    assert.ok(ids.includes(key(attacker)), 'the attacker (on alerted edges) is among them');
    assert.match(await page.locator('#graph-cut').textContent(), /Showing \d+ of \d{3,} services/);
    await screenshot(page, `large-namespace-mesh-${theme}`);
    assert.deepEqual(events.external, []);
    assert.deepEqual(events.errors, []);
    await context.close();
  });

  test(`${theme}: search jumps to a service and focus shows its neighbourhood`, async () => {
    const { page, context, events } = await openPage(browser, server.base, { colorScheme: theme });
    await page.goto(`${server.base}/#/graph`);
    await page.waitForSelector('main[data-ready="graph"]');
    await page.fill('#graph-search', attacker.service);
    await page.waitForSelector(`#search-results button:text-is("${key(attacker)}")`);
    // Light clicks the result, dark presses Enter (the best match of what is typed).
    if (theme === 'light') await page.click(`#search-results button:text-is("${key(attacker)}")`);
    else await page.press('#graph-search', 'Enter');
    await page.waitForFunction((k) => new URLSearchParams(location.hash.split('?')[1]).get('focus') === k, key(attacker));
    await page.waitForSelector(`main[data-ready="graph"] .graph-nodes li.focus[data-id="${key(attacker)}"]`, { state: 'attached' });
    const ids = await listed(page);
    const neighbourhood = await server.get(`/api/v1/graph/service/${encodeURIComponent(key(attacker))}`);
    const expected = new Set([key(attacker), ...neighbourhood.calls.map((e) => e.destination), ...neighbourhood.callers.map((e) => e.source)]);
    assert.deepEqual(new Set(ids), expected, 'one hop: the service, its callees and its callers');
    assert.match(await page.locator('#graph-crumbs').textContent(), /1 hop/);
    await screenshot(page, `large-focus-${theme}`);
    assert.deepEqual(events.errors, []);
    await context.close();
  });

  test(`${theme}: the new/alerted filter shows the attack's edges`, async () => {
    const { page, context, events } = await openPage(browser, server.base, { colorScheme: theme });
    await page.goto(`${server.base}/#/graph?ns=mesh`);
    await page.waitForSelector('main[data-ready="graph"]');
    await page.check('#f-changed');
    await page.waitForFunction(() => location.hash.includes('status=new%2Calerted') || location.hash.includes('status=new,alerted'));
    await page.waitForSelector('main[data-ready="graph"] .graph-edges li.alerted', { state: 'attached' });
    // The first alerted edge can be the unfiltered cut's, before the filtered one replaces
    // it: give the filtered cut time to show every attack edge, then assert on what is drawn.
    const expected = attackAlerts.map((a) => `${key(a.source)}>${key(a.destination)}`);
    await page.waitForFunction((want) => {
      const drawn = new Set([...document.querySelectorAll('.graph-view .graph-edges li.alerted')]
        .map((li) => `${li.dataset.source}>${li.dataset.target}`));
      return want.every((edge) => drawn.has(edge));
    }, expected, { timeout: 15000 }).catch(() => {});
    const alerted = await page.locator('.graph-view .graph-edges li.alerted').evaluateAll((lis) =>
      lis.map((li) => `${li.dataset.source}>${li.dataset.target}`));
    for (const a of attackAlerts) {
      assert.ok(alerted.includes(`${key(a.source)}>${key(a.destination)}`), `${key(a.source)} → ${key(a.destination)} drawn as alerted`);
    }
    await screenshot(page, `large-alerted-${theme}`);
    assert.deepEqual(events.errors, []);
    await context.close();
  });
}

test('the fan-out alert: ATT&CK tag, trace links from the template, the edge neighbourhood', async () => {
  const { page, context, events } = await openPage(browser, server.base);
  const { alerts } = await server.get('/api/v1/alerts?kind=fan_out');
  const alert = alerts[0];
  assert.deepEqual(alert.attack.map((t) => t.id), ['T1046']);
  await page.goto(`${server.base}/#/alerts`);
  await page.waitForSelector('main[data-ready="alerts"]');
  const row = page.locator(`#alert-rows tr[data-id="${alert.id}"]`);
  assert.equal(await row.locator('.attack-tag').textContent(), 'T1046');
  assert.equal(await row.locator('.attack-tag').getAttribute('href'), 'https://attack.mitre.org/techniques/T1046/');

  const edgeAlert = attackAlerts[0];
  await page.goto(`${server.base}/#/alerts/${encodeURIComponent(edgeAlert.id)}`);
  await page.waitForSelector('main[data-ready="alerts"] .alert-page');
  assert.match(await page.locator('#attack-techniques').textContent(), /T1021 Remote Services/);
  const links = await page.locator('.alert-page a.trace-link').evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
  assert.ok(links.length >= 1, 'trace ids are links');
  for (const [id, href] of links) assert.equal(href, TEMPLATE.replace('{trace_id}', encodeURIComponent(id)));
  const drawn = await listed(page, '.neighbourhood .graph-nodes li.path');
  assert.deepEqual(drawn.sort(), [key(edgeAlert.source), key(edgeAlert.destination)].sort());
  await page.locator('.neighbourhood').scrollIntoViewIfNeeded();
  await screenshot(page, 'large-alert');
  assert.deepEqual(events.external, [], 'links are not followed by themselves');
  await context.close();
});

test('a failed ack is shown to the user, and the theme toggle sticks', async () => {
  const { page, context } = await openPage(browser, server.base, { colorScheme: 'dark' });
  const target = attackAlerts[attackAlerts.length - 1];
  await page.goto(`${server.base}/#/alerts/${encodeURIComponent(target.id)}`);
  await page.waitForSelector('main[data-ready="alerts"] .alert-page .btn-ack');
  // Accepted behind this page's back: its ack button is stale and the server says 409.
  await server.post(`/api/v1/alerts/${encodeURIComponent(target.id)}/accept`);
  await page.click('.alert-page .btn-ack');
  const error = page.locator('.alert-page .actions [role=alert]');
  await error.waitFor();
  assert.match(await error.textContent(), /Ack failed: .*already accepted/);
  await page.goto(`${server.base}/#/alerts`);
  await page.waitForSelector('main[data-ready="alerts"]');

  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme ?? 'auto'), 'auto');
  await page.click('#theme');
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light');
  await page.reload();
  await page.waitForSelector('main[data-ready="alerts"]');
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light');
  await context.close();
});
