// The API token: asked once on a 401, kept for the session, sent on REST and SSE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openPage, startEastwest, waitFor } from './harness.mjs';

test('asks for the token once and keeps it for the session', async (t) => {
  const server = await startEastwest({ token: 's3cret-token' });
  const browser = await launchBrowser();
  t.after(async () => { await browser.close(); await server.stop(); });
  const { page } = await openPage(browser, server.base);
  await page.goto(`${server.base}/`);
  await page.waitForSelector('#token-form');
  await page.fill('#token-input', 's3cret-token');
  await page.click('#token-form button');
  await page.waitForSelector('main[data-ready="graph"]');
  await waitFor('SSE with access_token', async () => (await page.locator('#live').textContent()) === 'live');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('eastwest.token')), 's3cret-token');
  await page.reload();
  await page.waitForSelector('main[data-ready="graph"]');
  assert.equal(await page.locator('#token-form').count(), 0, 'not asked again');
});
