// The provisioned alert rules: p99 latency per handler and the upstream error rate, with their
// thresholds taken from environment variables of the Grafana container.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALERT_CHECKS, expandGrafanaEnv } from './support/grafana-checks.ts';
import { describeGrafanaChecks } from './support/grafana-input.ts';

describe('Grafana alert rules', () => {
  it('expands provisioning values as Grafana does: $$ is a literal $, $VAR and ${VAR} from the environment', () => {
    const env = new Map([['LIMIT', '0.5']]);
    assert.equal(expandGrafanaEnv('$$A > ${LIMIT} and $LIMIT, $UNSET.', env), '$A > 0.5 and 0.5, .');
  });
  describeGrafanaChecks('alerts', ALERT_CHECKS);
});
