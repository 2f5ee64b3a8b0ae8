// deploy/compose.yaml against the Compose specification schema and the stack's own rules; each
// rule also fails on a seeded mistake (test/fixtures/compose).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { otelConfigShape } from '@spanscope/proxy/tracing';
import { itCatchesFixtures } from './support/checks.ts';
import { COMPOSE_CHECKS, interpolate } from './support/compose-checks.ts';
import type { ComposeProject } from './support/compose-checks.ts';
import { documentedKeys, parseEnvFile } from './support/env-file.ts';
import { applyPatch } from './support/json-patch.ts';
import { COMPOSE_FILE, ENV_FILE, GRAFANA_DASHBOARD_PROVIDER, PROMETHEUS_CONFIG } from './support/paths.ts';
import { readYamlFile } from './support/yaml-files.ts';

const envSource = readFileSync(ENV_FILE, 'utf8');
const project: ComposeProject = {
  compose: readYamlFile(COMPOSE_FILE),
  envFile: parseEnvFile(envSource).entries,
  knownVariables: new Set([...documentedKeys(envSource), ...Object.keys(otelConfigShape('spanscope-proxy'))]),
  prometheus: readYamlFile(PROMETHEUS_CONFIG),
  dashboardProvider: readYamlFile(GRAFANA_DASHBOARD_PROVIDER),
};

describe('compose stack', () => {
  for (const check of COMPOSE_CHECKS) {
    it(check.rule, () => {
      assert.deepEqual(check.run(project), []);
    });
  }

  it('interpolates as Compose does: defaults, $$ as a literal $, unset variables listed', () => {
    const missing: string[] = [];
    assert.deepEqual(interpolate({ a: '${A:-1}', b: '$${B}', c: 'x${C}y', d: '${D-2}' }, missing), {
      a: '1',
      b: '${B}',
      c: 'xy',
      d: '2',
    });
    assert.deepEqual(missing, ['C']);
  });

  itCatchesFixtures('compose', COMPOSE_CHECKS, (fixture) => {
    const subject = fixture.subject ?? 'compose';
    assert.ok(
      ['compose', 'prometheus', 'dashboardProvider'].includes(subject),
      `${fixture.file}: unknown subject`,
    );
    const key = subject as 'compose' | 'prometheus' | 'dashboardProvider';
    return { ...project, [key]: applyPatch(project[key], fixture.patch) };
  });
});
