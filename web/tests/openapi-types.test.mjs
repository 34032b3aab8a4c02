// The dashboard's API types are generated from the OpenAPI document the server serves
// (api/openapi.json); this fails when the committed file is not what the generator makes
// of the current document. Regenerate with `npm run gen:api` and commit the result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');

test('src/generated/openapi.ts is current with api/openapi.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eastwest-types-'));
  try {
    const out = join(dir, 'openapi.ts');
    execFileSync(join(web, 'node_modules/.bin/openapi-typescript'),
      ['../api/openapi.json', '--empty-objects-unknown', '-o', out], { cwd: web, stdio: 'pipe' });
    const committed = readFileSync(join(web, 'src/generated/openapi.ts'), 'utf8');
    assert.ok(committed === readFileSync(out, 'utf8'),
      'web/src/generated/openapi.ts is stale: run `npm run gen:api` in web/ and commit it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
