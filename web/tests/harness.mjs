// Test harness: starts the real eastwest binary, feeds it OTLP JSON traces over HTTP,
// and drives Debian chromium through playwright-core.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
// Every run writes its screenshots under web/test-results/ (ignored by git), so a test run
// leaves the tree clean; `EASTWEST_SCREENSHOTS=../docs/screenshots npm test` refreshes the
// README's copies.
export const SCREENSHOTS = resolve(process.env.EASTWEST_SCREENSHOTS ?? resolve(here, '../test-results/screenshots'));

export function binaryPath() {
  const bin = process.env.EASTWEST_BIN
    ?? join(process.env.CARGO_TARGET_DIR ?? resolve(here, '../../target'), 'debug', 'eastwest');
  if (!existsSync(bin)) {
    throw new Error(`eastwest binary not found at ${bin}: run \`cargo build --bin eastwest\` first, `
      + 'or set EASTWEST_BIN (or CARGO_TARGET_DIR) to where it is');
  }
  return bin;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => ok(port)); });
  });
}

export async function waitFor(what, check, timeoutMs = 30000, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { const v = await check(); if (v) return v; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/**
 * Starts `eastwest serve` on free ports with a temp data dir. `freePort` releases its port
 * before eastwest binds it, so a parallel process can take it in between; eastwest then
 * exits on the bind error, and the start is retried on fresh ports.
 */
export async function startEastwest({ token, learningPeriod = '1m', config } = {}) {
  const ATTEMPTS = 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEastwestOnce({ token, learningPeriod, config });
    } catch (e) {
      if (!e.exitedEarly || attempt === ATTEMPTS) throw e;
    }
  }
}

/** `config`: TOML text for `--config` (e.g. `[api]\ntrace_url_template = "…"`). */
async function startEastwestOnce({ token, learningPeriod, config }) {
  const bin = binaryPath();
  const [grpc, http, apiPort] = [await freePort(), await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), 'eastwest-web-'));
  const args = ['serve', '--otlp-grpc', `127.0.0.1:${grpc}`, '--otlp-http', `127.0.0.1:${http}`,
    '--api', `127.0.0.1:${apiPort}`, '--data-dir', dataDir, '--learning-period', learningPeriod];
  if (token) args.push('--api-token', token);
  if (config) {
    writeFileSync(join(dataDir, 'eastwest.toml'), config);
    args.push('--config', join(dataDir, 'eastwest.toml'));
  }
  const env = { ...process.env, EASTWEST_LOG: process.env.EASTWEST_LOG ?? 'warn' };
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  let exited = null;
  child.on('exit', (code) => { exited = code; });
  const base = `http://127.0.0.1:${apiPort}`;
  try {
    // Stop polling as soon as the process is gone (waitFor retries on a thrown error).
    await waitFor('eastwest /healthz', async () => exited !== null || (await fetch(`${base}/healthz`)).ok, 30000);
    if (exited !== null) throw new Error(`eastwest exited with ${exited} before becoming ready`);
  } catch (e) {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    const error = new Error(`${e.message}\n--- eastwest output ---\n${log}`);
    error.exitedEarly = exited !== null;
    throw error;
  }
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return {
    base, otlp: `http://127.0.0.1:${http}`, otlpGrpc: `http://127.0.0.1:${grpc}`, dataDir, log: () => log,
    async get(path) {
      const r = await fetch(base + path, { headers });
      if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
      return r.json();
    },
    async post(path, body = {}) {
      const r = await fetch(base + path, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json', 'X-Eastwest-Request': '1' }, body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
      return r.json();
    },
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]);
        if (exited === null) child.kill('SIGKILL');
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const hex = (n) => randomBytes(n).toString('hex');
const str = (key, value) => ({ key, value: { stringValue: value } });
const int = (key, value) => ({ key, value: { intValue: String(value) } });

/**
 * One request `from` → `to` as a CLIENT span (in `from`) and its SERVER span (in `to`),
 * with current OTel HTTP conventions. `at` is event time in ms.
 */
export function call({ from, to, method = 'GET', route = '/', status = 200, at, traceId = hex(16), parentSpanId = '' }) {
  const start = BigInt(Math.round(at)) * 1000000n;
  const end = start + 5000000n;
  const clientId = hex(8);
  const serverId = hex(8);
  const resource = (w) => ({ attributes: [str('service.name', w.service), str('service.namespace', w.namespace), str('k8s.namespace.name', w.namespace)] });
  const attrs = [str('http.request.method', method), str('http.route', route), str('url.path', route), int('http.response.status_code', status)];
  const span = (id, parent, kind, extra) => ({
    traceId, spanId: id, parentSpanId: parent, name: `${method} ${route}`, kind,
    startTimeUnixNano: String(start), endTimeUnixNano: String(end), attributes: [...attrs, ...extra], status: {},
  });
  return {
    traceId, serverSpanId: serverId,
    resourceSpans: [
      { resource: resource(from), scopeSpans: [{ scope: { name: 'test' }, spans: [span(clientId, parentSpanId, 3, [str('server.address', to.service)])] }] },
      { resource: resource(to), scopeSpans: [{ scope: { name: 'test' }, spans: [span(serverId, clientId, 2, [])] }] },
    ],
  };
}

export async function postTraces(server, calls) {
  const body = { resourceSpans: calls.flatMap((c) => c.resourceSpans) };
  const r = await fetch(`${server.otlp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`POST /v1/traces: ${r.status} ${await r.text()}`);
}

/** `args`: extra chromium flags (e.g. `--host-resolver-rules` to give other sites a name). */
export async function launchBrowser({ args = [] } = {}) {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) throw new Error(`chromium not found at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath, headless: true,
    // --disable-dev-shm-usage: CI containers often mount a small /dev/shm, and a renderer that
    // runs out of it while painting a screenshot crashes the page ("Target crashed").
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', ...args],
  });
}

/** A page at 1280×800 that records dialogs, page errors and any request leaving `base`. */
export async function openPage(browser, base, { colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme });
  const page = await context.newPage();
  const events = { dialogs: [], errors: [], external: [] };
  page.on('dialog', (d) => { events.dialogs.push(d.message()); void d.dismiss(); });
  page.on('pageerror', (e) => events.errors.push(String(e)));
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) events.external.push(r.url()); });
  return { page, context, events };
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** The root SERVER span of a request entering the mesh at `to` (the trace's entry). */
export function root({ to, method = 'GET', route = '/', at, traceId = hex(16) }) {
  const start = BigInt(Math.round(at)) * 1000000n;
  const spanId = hex(8);
  return {
    traceId, serverSpanId: spanId,
    resourceSpans: [{
      resource: { attributes: [str('service.name', to.service), str('service.namespace', to.namespace), str('k8s.namespace.name', to.namespace)] },
      scopeSpans: [{ scope: { name: 'test' }, spans: [{
        traceId, spanId, parentSpanId: '', name: `${method} ${route}`, kind: 2,
        startTimeUnixNano: String(start), endTimeUnixNano: String(start + 20000000n),
        attributes: [str('http.request.method', method), str('http.route', route), str('url.path', route), int('http.response.status_code', 200)], status: {},
      }] }],
    }],
  };
}

/** Runs the eastwest binary (gen, replay, …) to completion; throws with its output on failure. */
export function runEastwest(args, { timeoutMs = 180000 } = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(binaryPath(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, EASTWEST_LOG: 'warn' } });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) ok(out); else fail(new Error(`eastwest ${args.join(' ')} exited ${code}:\n${out}`));
    });
  });
}
