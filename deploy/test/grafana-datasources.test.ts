// The provisioned data sources: the Tempo data source links a span to its flame graph in
// Pyroscope (tracesToProfiles), to its handler's metrics, and exemplars link metrics to traces.
import { describe } from 'node:test';
import { DATASOURCE_CHECKS } from './support/grafana-checks.ts';
import { describeGrafanaChecks } from './support/grafana-input.ts';

describe('Grafana data sources', () => {
  describeGrafanaChecks('datasources', DATASOURCE_CHECKS);
});
