// Pages on other sites, in the operator's own browser, against a token-less API on
// loopback: their forged posts are refused and change nothing, a rebound name reads
// nothing, the dashboard cannot be framed — and the dashboard's own buttons still work.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { call, root, freePort, launchBrowser, postTraces, startEastwest, waitFor } from './harness.mjs';

const shop = (service) => ({ service, namespace: 'shop' });
const FRONTEND = shop('frontend'), CART = shop('cart'), USERS = shop('users'), LEDGER = shop('ledger');
const T0 = Date.now() - 60 * 60 * 1000;

let server, browser, evil, evilPort, evilHtml = '';
let apiPort;
// Both names resolve to 127.0.0.1 in this browser only: evil.example is another site,
// rebind.example is what a DNS-rebinding attacker points at the API.
const EVIL = () => `http://evil.example:${evilPort}`;

before(async () => {
  server = await startEastwest({ learningPeriod: '1h' });
  apiPort = new URL(server.base).port;
  evilPort = await freePort();
  evil = createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end(evilHtml); });
  await new Promise((ok) => evil.listen(evilPort, '127.0.0.1', ok));
  browser = await launchBrowser({ args: ['--host-resolver-rules=MAP evil.example 127.0.0.1, MAP rebind.example 127.0.0.1',
    // Chromium's own Private Network Access block would stop the rebound page's requests
    // before they reach the server; other browsers have none, and the server's defence is
    // what this file tests.
    '--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,LocalNetworkAccessChecks'] });
  const calls = [];
  for (let i = 0; i < 30; i++) {
    const at = T0 + i * 2000;
    const req = root({ to: FRONTEND, route: '/cart', at });
    const entry = call({ from: FRONTEND, to: CART, route: '/cart', at: at + 1, traceId: req.traceId, parentSpanId: req.serverSpanId });
    calls.push(req, entry, call({ from: CART, to: USERS, route: '/users/{id}', at: at + 2, traceId: entry.traceId, parentSpanId: entry.serverSpanId }));
  }
  await postTraces(server, calls);
  await waitFor('learning started', async () => (await server.get('/api/v1/baseline')).learning_started);
});

after(async () => {
  if (process.env.EASTWEST_TEST_LOG) console.error(server?.log());
  await browser?.close();
  await server?.stop();
  evil?.close();
});

async function refusals() {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const count = (reason) => Number(text.match(new RegExp(`eastwest_http_refused_total\\{reason="${reason}"\\} (\\d+)`))?.[1]);
  return { origin: count('origin'), host: count('host') };
}

/**
 * Opens the attacker's page, which fires a text/plain fetch (no-cors: no preflight), a
 * fetch with the dashboard's header (needs a preflight), and a text/plain form post at
 * `path`. Returns what the page saw.
 */
async function attackFrom(path) {
  const target = `${server.base}${path}`;
  evilHtml = `<!doctype html><title>cute cats</title>
    <form id="f" method="POST" action="${target}" enctype="text/plain"><input name='{"by":"evil","x":"' value='"}'></form>
    <script>
      window.results = {};
      const plain = fetch(${JSON.stringify(target)}, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: '{"by":"evil"}' })
        .then((r) => { window.results.plain = r.type; }, (e) => { window.results.plain = 'error'; });
      const marked = fetch(${JSON.stringify(target)}, { method: 'POST', headers: { 'X-Eastwest-Request': '1', 'Content-Type': 'application/json' }, body: '{}' })
        .then((r) => { window.results.marked = r.status; }, (e) => { window.results.marked = 'blocked'; });
      Promise.all([plain, marked]).then(() => { window.results.done = true; });
    </script>`;
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${EVIL()}/`);
  await page.waitForFunction(() => window.results?.done);
  const results = await page.evaluate(() => window.results);
  // The form: a top-level navigation, which carries the evil Origin.
  const [response] = await Promise.all([page.waitForNavigation(), page.evaluate(() => document.getElementById('f').submit())]);
  const form = { status: response.status(), body: await response.text() };
  await context.close();
  return { ...results, form };
}

test('a cross-site page cannot end learning; the dashboard button can', async () => {
  const before = await refusals();
  const seen = await attackFrom('/api/v1/baseline/detect');
  assert.equal(seen.marked, 'blocked', 'the preflight for the custom header is never granted');
  assert.equal(seen.form.status, 403, seen.form.body);
  assert.match(JSON.parse(seen.form.body).error, /cross-origin POST from "http:\/\/evil\.example/);
  const after = await refusals();
  assert.ok(after.origin >= before.origin + 2, `form and text/plain fetch refused: ${JSON.stringify({ before, after })}`);
  assert.equal((await server.get('/api/v1/baseline')).state, 'learning', 'learning did not end');

  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${server.base}/#/baseline`);
  await page.waitForSelector('main[data-ready="baseline"]');
  await page.click('#end-learning');
  await waitFor('detecting', async () => (await page.locator('#baseline-state').textContent()) === 'detecting');
  assert.equal((await server.get('/api/v1/baseline')).state, 'detecting');
  await context.close();
});

test('a cross-site page cannot accept an alert; the dashboard button can', async () => {
  // A compromised cart calls an admin endpoint it never called: a sensitive_endpoint alert.
  const batch = [];
  for (let i = 0; i < 5; i++) {
    const at = T0 + 10 * 60 * 1000 + i * 1000;
    const req = root({ to: FRONTEND, route: '/cart', at });
    const entry = call({ from: FRONTEND, to: CART, route: '/cart', at: at + 1, traceId: req.traceId, parentSpanId: req.serverSpanId });
    batch.push(req, entry, call({ from: CART, to: LEDGER, method: 'DELETE', route: '/admin/users/{id}', at: at + 2, traceId: entry.traceId, parentSpanId: entry.serverSpanId }));
  }
  await postTraces(server, batch);
  const alert = await waitFor('a cart → ledger alert', async () =>
    (await server.get('/api/v1/alerts')).alerts.find((a) => a.destination?.service === 'ledger'), 45000);
  assert.equal(alert.state, 'open');

  const seen = await attackFrom(`/api/v1/alerts/${encodeURIComponent(alert.id)}/accept`);
  assert.equal(seen.marked, 'blocked');
  assert.equal(seen.form.status, 403, seen.form.body);
  const still = await server.get(`/api/v1/alerts/${encodeURIComponent(alert.id)}`);
  assert.equal(still.state, 'open', 'the alert was not accepted');
  const edge = (await server.get('/api/v1/graph')).edges.find((e) => e.destination === 'ledger.shop');
  assert.notEqual(edge?.status, 'baseline', 'the edge was not learned');

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.base}/#/alerts`);
  const row = page.locator(`#alert-rows tr[data-id="${alert.id}"]`);
  await row.waitFor();
  await row.locator('.btn-accept').click();
  await waitFor('accepted', async () => (await server.get(`/api/v1/alerts/${encodeURIComponent(alert.id)}`)).state === 'accepted');
  await context.close();
});

test('a rebound name reads nothing, and the dashboard cannot be framed', async () => {
  const before = await refusals();
  const context = await browser.newContext();
  const page = await context.newPage();
  // The dashboard under a foreign name.
  const response = await page.goto(`http://rebind.example:${apiPort}/`);
  assert.equal(response.status(), 421);
  // DNS rebinding: the attacker's server served this page, then its name was pointed at
  // 127.0.0.1, so the page's script is same-origin with whatever answers there now.
  await context.route((url) => url.hostname === 'rebind.example' && url.pathname === '/', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>cute cats</title>' }));
  await page.goto(`http://rebind.example:${apiPort}/`);
  const read = await page.evaluate(async () => Promise.all(['/api/v1/alerts', '/metrics'].map(async (path) => {
    const r = await fetch(path);
    return { path, status: r.status, body: await r.text() };
  })));
  for (const r of read) {
    assert.equal(r.status, 421, r.path);
    assert.match(JSON.parse(r.body).error, /does not answer to host "rebind\.example:/);
  }
  await context.unrouteAll();
  assert.ok((await refusals()).host >= before.host + 3);

  evilHtml = `<!doctype html><iframe id="frame" src="${server.base}/"></iframe>`;
  const framed = [];
  page.on('response', (r) => { if (r.url() === `${server.base}/`) framed.push(r.headers()); });
  await page.goto(`${EVIL()}/`);
  await waitFor('the frame request', async () => framed.length > 0);
  assert.equal(framed[0]['x-frame-options'], 'DENY');
  assert.match(framed[0]['content-security-policy'], /frame-ancestors 'none'/);
  // The browser refuses to render it: the frame never runs the dashboard.
  await new Promise((r) => setTimeout(r, 1000));
  const frame = page.frames().find((f) => f !== page.mainFrame());
  const rendered = await frame.evaluate(() => document.querySelector('main') !== null).catch(() => false);
  assert.equal(rendered, false, `the dashboard rendered inside a frame (${frame.url()})`);
  await context.close();
});
