// Everything the Grafana checks read, loaded once per test file, and the shared test body:
// each rule holds on the real files and fails on each seeded mistake of its fixture folder.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { SERIES_LABEL_NAMES } from '@spanscope/proxy';
import { itCatchesFixtures } from './checks.ts';
import type { Check } from './checks.ts';
import { environmentOf, interpolate, SERVICES } from './compose-checks.ts';
import { proxyMetricNames } from './grafana-checks.ts';
import type { GrafanaProvisioning } from './grafana-checks.ts';
import { applyPatch } from './json-patch.ts';
import {
  COMPOSE_FILE,
  GRAFANA_ALERTS,
  GRAFANA_DASHBOARD,
  GRAFANA_DATASOURCES,
  TEMPO_CONFIG,
} from './paths.ts';
import { pick, recordOf } from './values.ts';
import { readYamlFile } from './yaml-files.ts';

export function loadGrafanaProvisioning(): GrafanaProvisioning {
  const compose = interpolate(readYamlFile(COMPOSE_FILE));
  return {
    datasources: readYamlFile(GRAFANA_DATASOURCES),
    dashboard: JSON.parse(readFileSync(GRAFANA_DASHBOARD, 'utf8')) as unknown,
    alerts: readYamlFile(GRAFANA_ALERTS),
    grafanaEnv: environmentOf(recordOf(pick(compose, `services.${SERVICES.grafana}`))),
    tempo: readYamlFile(TEMPO_CONFIG),
    metricNames: proxyMetricNames(),
    seriesLabels: SERIES_LABEL_NAMES,
  };
}

type Part = 'datasources' | 'dashboard' | 'alerts';

/** Registers the tests of one part: every rule on the real files, then every fixture. */
export function describeGrafanaChecks(part: Part, checks: readonly Check<GrafanaProvisioning>[]): void {
  const input = loadGrafanaProvisioning();
  for (const check of checks) {
    it(check.rule, () => {
      assert.deepEqual(check.run(input), []);
    });
  }
  itCatchesFixtures(`grafana-${part}`, checks, (fixture) => ({
    ...input,
    [part]: applyPatch(input[part], fixture.patch),
  }));
}
