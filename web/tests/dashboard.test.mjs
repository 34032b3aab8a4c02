// End-to-end dashboard tests: the real eastwest binary, real OTLP traces, real chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { call, root, launchBrowser, openPage, postTraces, screenshot, startEastwest, waitFor } from './harness.mjs';

const shop = (service) => ({ service, namespace: 'shop' });
const FRONTEND = shop('frontend'), CART = shop('cart'), USERS = shop('users'), PAYMENTS = shop('payments');
const VAULT = { service: 'vault', namespace: 'secure' };
const T0 = Date.now() - 60 * 60 * 1000; // event time: an hour ago

let server, browser;

/** Three minutes of normal traffic (more than the 1m learning period), then end learning. */
async function learnBaseline() {
  const calls = [];
  for (let i = 0; i < 90; i++) {
    const at = T0 + i * 2000;
    const req = root({ to: FRONTEND, route: '/cart', at });
    const entry = call({ from: FRONTEND, to: CART, route: '/cart', at: at + 1, traceId: req.traceId, parentSpanId: req.serverSpanId });
    calls.push(req, entry);
    calls.push(call({ from: CART, to: USERS, route: '/users/{id}', at: at + 2, traceId: entry.traceId, parentSpanId: entry.serverSpanId }));
  }
  await postTraces(server, calls);
  await waitFor('baseline edges', async () => (await server.get('/api/v1/graph')).edges.length >= 2);
  await server.post('/api/v1/baseline/detect');
  await waitFor('detecting', async () => (await server.get('/api/v1/baseline')).state === 'detecting');
}

/** cart → payments (admin route) → vault: new edges chained into a lateral-movement path. */
async function attack(offsetMs) {
  const calls = [];
  for (let i = 0; i < 5; i++) {
    const at = T0 + offsetMs + i * 1000;
    const req = root({ to: FRONTEND, route: '/cart', at });
    const entry = call({ from: FRONTEND, to: CART, route: '/cart', at: at + 1, traceId: req.traceId, parentSpanId: req.serverSpanId });
    calls.push(req);
    const hop1 = call({ from: CART, to: PAYMENTS, method: 'DELETE', route: '/admin/users/{id}', at: at + 2, traceId: entry.traceId, parentSpanId: entry.serverSpanId });
    const hop2 = call({ from: PAYMENTS, to: VAULT, route: '/v1/secret/{name}', at: at + 4, traceId: entry.traceId, parentSpanId: hop1.serverSpanId });
    calls.push(entry, hop1, hop2);
  }
  await postTraces(server, calls);
}

before(async () => {
  server = await startEastwest({ learningPeriod: '1m' });
  browser = await launchBrowser();
  await learnBaseline();
});

after(async () => {
  // EASTWEST_TEST_LOG=1 npm test: the server's own log, for a failing run.
  if (process.env.EASTWEST_TEST_LOG) console.error(server?.log());
  await browser?.close();
  await server?.stop();
});

/** The ids the graph index (the DOM list beside the canvas) lists. */
async function listedIds(page, scope = '.graph-view') {
  return page.locator(`${scope} .graph-nodes li`).evaluateAll((lis) => lis.map((li) => li.dataset.id));
}

test('graph opens on namespaces, drills into one, with no external requests', async () => {
  const { page, context, events } = await openPage(browser, server.base);
  const response = await page.goto(`${server.base}/`);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  await page.waitForSelector('main[data-ready="graph"]');
  assert.ok((await listedIds(page)).includes('ns:shop'), 'the shop namespace is a node');
  assert.equal(await page.evaluate(() => Object.keys(window).filter((k) => k.startsWith('__')).length), 0, 'no test hooks on window');
  // open the namespace from the list (keyboard-reachable, like a tap on the canvas)
  await page.click('.graph-index summary');
  await page.click('.graph-nodes li[data-id="ns:shop"] button');
  await page.waitForFunction(() => location.hash.includes('ns=shop'));
  await page.waitForSelector('main[data-ready="graph"] .graph-nodes li[data-id="cart.shop"]', { state: 'attached' });
  const ids = await listedIds(page);
  for (const key of ['frontend.shop', 'cart.shop', 'users.shop']) assert.ok(ids.includes(key), `${key} in ${ids}`);
  // a service: blast radius from the server
  await page.click('.graph-index summary');
  await page.click('.graph-nodes li[data-id="frontend.shop"] button');
  await page.waitForSelector('#blast-radius li');
  const radius = await page.locator('#blast-radius li').allTextContents();
  assert.ok(radius.includes('cart.shop') && radius.includes('users.shop'), `blast radius ${radius}`);
  await screenshot(page, 'graph');
  await page.click('.graph-edges li[data-source="cart.shop"][data-target="users.shop"] button');
  await page.waitForSelector('#detail h4');
  assert.match(await page.locator('#detail').textContent(), /\/users\/\{id\}/);
  await screenshot(page, 'graph-edge');
  assert.deepEqual(events.external, []);
  assert.deepEqual(events.errors, []);
  await context.close();
});

test('a new alert appears live and ack persists across a reload', async () => {
  const { page, context, events } = await openPage(browser, server.base, { colorScheme: 'dark' });
  await page.goto(`${server.base}/#/alerts`);
  await page.waitForSelector('main[data-ready="alerts"]');
  await waitFor('SSE connected', async () => (await page.locator('#live').textContent()) === 'live');
  const before = await page.locator('#alert-rows tr.alert').count();
  await attack(5 * 60 * 1000);
  // live: no reload, the SSE feed adds rows
  await waitFor('a live alert row', async () => (await page.locator('#alert-rows tr.alert').count()) > before, 45000);
  assert.match(await page.locator('#alert-rows').textContent(), /payments/);
  await screenshot(page, 'alerts');

  const firstRow = page.locator('#alert-rows tr.alert').first();
  const id = await firstRow.getAttribute('data-id');
  await firstRow.locator('.btn-ack').click();
  await waitFor('acked', async () => (await page.locator(`#alert-rows tr[data-id="${id}"] td.state`).textContent()) === 'acked');
  await page.reload();
  await page.waitForSelector('main[data-ready="alerts"]');
  await page.waitForSelector(`#alert-rows tr[data-id="${id}"]`);
  assert.equal(await page.locator(`#alert-rows tr[data-id="${id}"] td.state`).textContent(), 'acked');

  await page.goto(`${server.base}/#/alerts/${encodeURIComponent(id)}`);
  await page.waitForSelector('main[data-ready="alerts"] .alert-page');
  assert.match(await page.locator('.alert-page').textContent(), /score/);
  await screenshot(page, 'alert');

  await page.goto(`${server.base}/#/incidents`);
  await page.waitForSelector('main[data-ready="incidents"]');
  await waitFor('an incident row', async () => (await page.locator('tr.incident').count()) > 0 || (await page.reload(), false), 30000, 2000);
  await screenshot(page, 'incidents');
  assert.deepEqual(events.external, []);
  await context.close();
});

test('the incident page shows the timeline and draws the lateral-movement path', async () => {
  const { page, context, events } = await openPage(browser, server.base, { colorScheme: 'dark' });
  const incident = await waitFor('an incident with a multi-hop path (cart → payments → vault)', async () =>
    (await server.get('/api/v1/incidents?limit=50')).incidents.find((i) => i.path.length >= 2), 45000);
  await page.goto(`${server.base}/#/incidents/${encodeURIComponent(incident.id)}`);
  await page.waitForSelector('main[data-ready="incidents"] .incident-page');
  assert.ok(await page.locator('.timeline li').count() >= 1, 'timeline has findings');
  assert.equal(await page.locator('#incident-path').textContent(), incident.path.join(' → '));
  await page.waitForSelector('.neighbourhood .graph-nodes li.path', { state: 'attached' });
  const drawn = {
    nodes: await page.locator('.neighbourhood .graph-nodes li.path').evaluateAll((lis) => lis.map((li) => li.dataset.id)),
    edges: await page.locator('.neighbourhood .graph-edges li.path').count(),
  };
  assert.deepEqual(drawn.nodes.sort(), [...new Set(incident.path)].sort());
  assert.equal(drawn.edges, incident.path.length - 1);
  assert.ok(await page.locator('#incident-attack .attack-tag').count() >= 1, 'the incident names its ATT&CK techniques');
  await screenshot(page, 'incident');
  assert.deepEqual(events.external, []);
  await context.close();
});

test('baseline view shows progress and counts', async () => {
  const { page, context } = await openPage(browser, server.base);
  await page.goto(`${server.base}/#/baseline`);
  await page.waitForSelector('main[data-ready="baseline"]');
  assert.equal(await page.locator('#baseline-state').textContent(), 'detecting');
  assert.ok(await page.locator('#end-learning').isDisabled());
  // Learning was ended early, after calls: when it started is still known and shown.
  const started = await page.locator('#learning-started').textContent();
  assert.ok(started && started !== '—' && !started.startsWith('not recorded'), `learning started: ${started}`);
  assert.match(await page.locator('.baseline').textContent(), /learning ended/);
  await screenshot(page, 'baseline');
  await context.close();
});

test('attacker-controlled names and routes render as text and never run', async () => {
  const evilService = { service: '<img src=x onerror=alert(1)>', namespace: 'shop' };
  const evilRoute = '/admin/"><script>window.__xss=1;alert(2)</script>';
  const calls = [];
  for (let i = 0; i < 3; i++) {
    const req = root({ to: CART, route: '/cart', at: T0 + 10 * 60 * 1000 + i * 1000 - 1 });
    calls.push(req);
    const hop1 = call({ traceId: req.traceId, parentSpanId: req.serverSpanId, from: CART, to: evilService, method: 'GET', route: evilRoute, at: T0 + 10 * 60 * 1000 + i * 1000 });
    const hop2 = call({ traceId: req.traceId, parentSpanId: hop1.serverSpanId, from: evilService, to: { service: '"><script>window.__xss=2</script>', namespace: 'shop' }, route: '/<b>bold</b>', at: T0 + 10 * 60 * 1000 + i * 1000 + 1 });
    calls.push(hop1, hop2);
  }
  await postTraces(server, calls);
  await waitFor('evil node in graph', async () =>
    (await server.get('/api/v1/graph')).nodes.some((n) => n.service === evilService.service));

  const { page, context, events } = await openPage(browser, server.base);
  await page.addInitScript(() => { window.alert = () => { window.__alerted = true; }; });
  await page.goto(`${server.base}/#/graph?ns=shop`);
  await page.waitForSelector('main[data-ready="graph"]');
  const labels = await waitFor('evil label', async () => {
    const l = await page.locator('.graph-nodes li').allTextContents();
    return l.includes('<img src=x onerror=alert(1)>') && l.includes('"><script>window.__xss=2</script>') ? l : null;
  });
  assert.ok(labels.includes('"><script>window.__xss=2</script>'));
  await page.click('.graph-index summary');
  await page.locator('.graph-edges li', { hasText: '<img src=x onerror=alert(1)> → "><script>' }).first().locator('button').click();
  await page.waitForSelector('#detail h3, #detail .error');
  assert.equal(await page.locator('#detail .error').count(), 0, await page.locator('#detail').textContent());
  assert.ok((await page.locator('#detail').textContent()).includes('/<b>bold</b>'), 'route shown as text');
  // the search box lists hostile names as text too
  await page.fill('#graph-search', 'img');
  await page.waitForSelector('#search-results button');
  assert.ok((await page.locator('#search-results').textContent()).includes('<img src=x onerror=alert(1)>'));

  await page.goto(`${server.base}/#/alerts`);
  await page.waitForSelector('main[data-ready="alerts"]');
  const evilRow = page.locator('#alert-rows tr.alert', { hasText: '<script>window.__xss=1' });
  await waitFor('evil alert row', async () => (await evilRow.count()) > 0, 30000);
  await evilRow.first().locator('td.summary a').click();
  await page.waitForSelector('.alert-page');
  // The collector normalises raw paths (`;` parameters go), so the route the alert names
  // is the script tag's text, not the exact string sent.
  assert.ok((await page.locator('.alert-page').textContent()).includes('<script>window.__xss=1'), 'route as text on the alert page');
  await screenshot(page, 'xss-as-text');

  assert.equal(await page.locator('img[src="x"], main script, main b').count(), 0, 'no injected elements');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.evaluate(() => window.__alerted), undefined);
  assert.deepEqual(events.dialogs, []);
  assert.deepEqual(events.errors, []);
  await context.close();
});
