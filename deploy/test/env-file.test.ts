// .env.profiling is read by node --env-file (npm start), docker compose (env_file) and kustomize
// (the ConfigMap). They agree only on plain KEY=value lines, so the file must stay in that subset.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { assertCaught, loadFixtures, replaceText } from './support/checks.ts';
import { documentedKeys, parseEnvFile } from './support/env-file.ts';
import { ENV_FILE } from './support/paths.ts';

const source = readFileSync(ENV_FILE, 'utf8');

describe('env file', () => {
  it('.env.profiling uses only lines that node, compose and kustomize read alike', () => {
    assert.deepEqual(parseEnvFile(source).problems, []);
  });

  it('reads values as kustomize puts them in the ConfigMap', () => {
    const { entries } = parseEnvFile('# comment\n  A=1\nB=\nC=x=y\n');
    assert.deepEqual(
      [...entries],
      [
        ['A', '1'],
        ['B', ''],
        ['C', 'x=y'],
      ],
    );
    assert.deepEqual([...documentedKeys('A=1\n# B=2\n# not a variable\n')], ['A', 'B']);
  });

  for (const fixture of loadFixtures('env-file')) {
    it(`catches ${fixture.file}: ${fixture.why}`, () => {
      assert.equal(fixture.check, 'portable');
      assertCaught(parseEnvFile(replaceText(source, fixture)).problems, fixture);
    });
  }
});
