// The "spanscope" dashboard: the panels issue 6 names, on provisioned data sources, querying
// metrics the proxy really exports, with flame graphs filterable by handler and user_agent.
import { describe } from 'node:test';
import { DASHBOARD_CHECKS } from './support/grafana-checks.ts';
import { describeGrafanaChecks } from './support/grafana-input.ts';

describe('Grafana dashboard', () => {
  describeGrafanaChecks('dashboard', DASHBOARD_CHECKS);
});
