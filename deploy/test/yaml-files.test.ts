// Every YAML file of the deployment parses cleanly under strict rules (no duplicate keys, no
// tabs, no warnings), and so does the dashboard JSON; a seeded syntax mistake is caught.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { assertCaught, loadFixtures, replaceText } from './support/checks.ts';
import { DEPLOY_DIR, FIXTURES_DIR, GRAFANA_DASHBOARD, filesBelow, relativeToRepo } from './support/paths.ts';
import { yamlProblems } from './support/yaml-files.ts';

const yamlFiles = filesBelow(DEPLOY_DIR, (name) => /\.ya?ml$/.test(name));

describe('YAML files', () => {
  it('finds the deployment files', () => {
    const names = yamlFiles.map(relativeToRepo);
    for (const expected of [
      'deploy/compose.yaml',
      'deploy/k8s/base/deployment.yaml',
      'deploy/grafana/provisioning/datasources/datasources.yaml',
    ]) {
      assert.ok(names.includes(expected), `${expected} not found`);
    }
  });

  for (const file of yamlFiles) {
    it(`${relativeToRepo(file)} parses without errors or warnings`, () => {
      assert.deepEqual(yamlProblems(readFileSync(file, 'utf8')), []);
    });
  }

  it(`${relativeToRepo(GRAFANA_DASHBOARD)} is JSON`, () => {
    assert.doesNotThrow(() => JSON.parse(readFileSync(GRAFANA_DASHBOARD, 'utf8')) as unknown);
  });

  for (const fixture of loadFixtures('yaml')) {
    it(`catches ${fixture.file}: ${fixture.why}`, () => {
      assert.equal(fixture.check, 'parses', `${fixture.file}: the only check here is "parses"`);
      assert.ok(fixture.subject !== undefined, `${fixture.file}: subject names the file to change`);
      const file = path.join(DEPLOY_DIR, fixture.subject);
      assert.ok(!file.startsWith(FIXTURES_DIR));
      assertCaught(yamlProblems(replaceText(readFileSync(file, 'utf8'), fixture)), fixture);
    });
  }
});
