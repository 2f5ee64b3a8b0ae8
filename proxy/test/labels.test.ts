import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BAGGAGE_KEYS,
  DEFAULT_LABEL_SWITCHES,
  EMPTY_LABELS,
  LABEL_NAMES,
  LabelError,
  MAX_LABEL_VALUE_LENGTH,
  SpanscopeError,
  filterProfileLabels,
  isProfileLabels,
  labelRecord,
  labelSchemeDescription,
  labelValue,
  mergeProfileLabels,
  profileLabels,
  sanitizeLabelValue,
} from '@spanscope/proxy';
import type { LabelSwitches } from '@spanscope/proxy';

function assertLabelError(fn: () => unknown, label: string, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof LabelError, `expected a LabelError, got ${String(error)}`);
    assert.ok(error instanceof SpanscopeError);
    assert.equal(error.code, 'SPANSCOPE_ERR_LABEL');
    assert.equal(error.name, 'LabelError');
    assert.equal(error.label, label);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

describe('label scheme: names', () => {
  it('accepts every label of the scheme', () => {
    const labels = profileLabels({
      service_name: 'inventory-backend',
      handler: 'get_product',
      method: 'GET',
      route: '/product/{id}',
      user_agent: 'load-test',
      db_operation: 'get_product',
      component: 'database',
      span_id: '00f067aa0ba902b7',
      span_name: 'GET /product/{id}',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    });
    assert.equal(Object.keys(labels).length, LABEL_NAMES.length);
    assert.equal(labels.route, '/product/{id}');
    assert.ok(isProfileLabels(labels));
    assert.ok(!isProfileLabels({ ...labels }), 'a copy is not a validated set');
  });

  it('leaves out undefined values', () => {
    assert.deepEqual(
      { ...profileLabels({ handler: 'health', user_agent: undefined }) },
      { handler: 'health' },
    );
  });

  it('rejects names outside [A-Za-z_][A-Za-z0-9_]*', () => {
    for (const name of ['user-agent', '1st', 'db.operation', '', 'handler ', 'spän']) {
      assertLabelError(() => profileLabels({ [name]: 'x' }), name, /does not match/);
    }
  });

  it('rejects well-formed names that are not in the scheme, such as unbounded ids', () => {
    for (const name of ['product_id', 'user_id', 'path', 'service']) {
      assertLabelError(() => profileLabels({ [name]: '42' }), name, /not in the label scheme/);
    }
  });
});

describe('label scheme: values', () => {
  it('refuses non-string values (Pyroscope ignores numeric labels)', () => {
    for (const value of [42, 42n, true, null, {}, ['a']]) {
      assertLabelError(() => profileLabels({ handler: value }), 'handler', /must be a string/);
    }
  });

  it('refuses empty values, also after cleaning', () => {
    for (const value of ['', '   ', '\u0000\n\t']) {
      assertLabelError(() => labelValue('route', value), 'route', /must not be empty/);
    }
  });

  it('removes control characters, trims and caps the length', () => {
    assert.equal(labelValue('span_name', '  GET\r\n/products\u0000 '), 'GET /products');
    const long = labelValue('route', `/${'a'.repeat(500)}`);
    assert.equal(long.length, MAX_LABEL_VALUE_LENGTH);
  });

  it('never splits a surrogate pair when capping, and replaces lone surrogates', () => {
    const value = `${'a'.repeat(MAX_LABEL_VALUE_LENGTH - 1)}😀`;
    const capped = sanitizeLabelValue(value);
    assert.equal(capped, 'a'.repeat(MAX_LABEL_VALUE_LENGTH - 1));
    assert.equal(sanitizeLabelValue('a\ud800b'), 'a\ufffdb');
  });

  it('span_id: 16 hex digits, not all zero, stored lowercase', () => {
    assert.equal(labelValue('span_id', '00F067AA0BA902B7'), '00f067aa0ba902b7');
    for (const bad of [
      '00f067aa0ba902b',
      '00f067aa0ba902b7a',
      '00f067aa0ba902bz',
      '0000000000000000',
      ' 00f067aa0ba902b7',
    ]) {
      assertLabelError(() => labelValue('span_id', bad), 'span_id', /16 hex digits/);
    }
  });

  it('trace_id: 32 hex digits, not all zero', () => {
    assert.equal(
      labelValue('trace_id', '4bf92f3577b34da6a3ce929d0e0e4736'),
      '4bf92f3577b34da6a3ce929d0e0e4736',
    );
    for (const bad of ['4bf92f3577b34da6a3ce929d0e0e473', '0'.repeat(32), '00f067aa0ba902b7']) {
      assertLabelError(() => labelValue('trace_id', bad), 'trace_id', /32 hex digits/);
    }
  });

  it('component: http or database only', () => {
    assert.equal(labelValue('component', 'http'), 'http');
    assertLabelError(() => labelValue('component', 'cache'), 'component', /one of http, database/);
  });

  it('service_name: no { } , = (it is the ingest series name)', () => {
    for (const bad of ['app{x}', 'a,b', 'a=b']) {
      assertLabelError(() => labelValue('service_name', bad), 'service_name');
    }
  });
});

describe('label scheme: switches and merging', () => {
  const all = profileLabels({
    handler: 'get_products',
    route: '/products',
    method: 'GET',
    component: 'http',
    user_agent: 'curl',
    span_id: '00f067aa0ba902b7',
    span_name: 'GET /products',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  });
  const on: LabelSwitches = {
    endpoint: true,
    database: true,
    userAgent: true,
    dynamicTags: true,
    traceId: true,
  };

  it('keeps the same object when every label passes', () => {
    assert.equal(filterProfileLabels(all, on), all);
  });

  it('drops the labels of each switch that is off', () => {
    const cases: [Partial<LabelSwitches>, string[]][] = [
      [{ endpoint: false }, ['handler', 'route', 'method', 'component']],
      [{ userAgent: false }, ['user_agent']],
      [{ dynamicTags: false }, ['span_id', 'span_name', 'trace_id']],
      [{ traceId: false }, ['trace_id']],
    ];
    for (const [off, dropped] of cases) {
      const kept = filterProfileLabels(all, { ...on, ...off });
      for (const name of dropped) assert.ok(!(name in kept), `${name} dropped with ${JSON.stringify(off)}`);
      assert.equal(Object.keys(kept).length, Object.keys(all).length - dropped.length);
    }
    const db = profileLabels({ db_operation: 'get_products', component: 'database' });
    assert.deepEqual({ ...filterProfileLabels(db, { ...on, database: false }) }, {});
    assert.equal(filterProfileLabels(db, { ...on, endpoint: false }), db);
  });

  it('trace_id is off by default', () => {
    assert.equal(DEFAULT_LABEL_SWITCHES.traceId, false);
    assert.ok(!('trace_id' in filterProfileLabels(all, DEFAULT_LABEL_SWITCHES)));
  });

  it('merges a nested scope over the outer labels', () => {
    const merged = mergeProfileLabels(
      all,
      profileLabels({ db_operation: 'count_products', component: 'database' }),
    );
    assert.equal(merged.component, 'database');
    assert.equal(merged.db_operation, 'count_products');
    assert.equal(merged.handler, 'get_products');
    assert.deepEqual(labelRecord(merged), { ...all, db_operation: 'count_products', component: 'database' });
    assert.equal(mergeProfileLabels(undefined, all), all);
    assert.equal(mergeProfileLabels(all, EMPTY_LABELS), all);
  });
});

describe('label scheme: JSON description', () => {
  it('is plain JSON describing every label, the baggage keys and the switches', () => {
    const description = labelSchemeDescription();
    assert.deepEqual(JSON.parse(JSON.stringify(description)), description);
    assert.deepEqual(
      description.labels.map((label) => label.name),
      [...LABEL_NAMES],
    );
    const byName = new Map(description.labels.map((label) => [label.name, label]));
    assert.equal(byName.get('span_id')?.kind, 'sample');
    assert.equal(byName.get('handler')?.kind, 'series');
    assert.equal(byName.get('trace_id')?.switch, 'ENABLE_TRACE_ID_LABEL');
    assert.equal(byName.get('trace_id')?.default, false);
    assert.match(byName.get('trace_id')?.description ?? '', /2\.0\.3/);
    assert.deepEqual(byName.get('component')?.values, ['http', 'database']);
    assert.equal(description.nameRule, '^[A-Za-z_][A-Za-z0-9_]*$');
    assert.deepEqual(description.baggage.keys, { ...BAGGAGE_KEYS });
    assert.deepEqual(Object.values(description.baggage.keys), [
      'spanscope.handler',
      'spanscope.route',
      'spanscope.user_agent',
    ]);
    assert.ok('pyroscope.profile.id' in description.spanAttributes);
    assert.deepEqual(description.switches.ENABLE_DYNAMIC_TAGS?.labels, ['span_id', 'span_name']);
    assert.ok(description.labels.every((label) => !('enabled' in label)));
  });

  it("says which labels are enabled when given the process's switches", () => {
    const description = labelSchemeDescription({ ...DEFAULT_LABEL_SWITCHES, userAgent: false });
    const enabled = Object.fromEntries(description.labels.map((label) => [label.name, label.enabled]));
    assert.equal(enabled.user_agent, false);
    assert.equal(enabled.trace_id, false);
    assert.equal(enabled.handler, true);
    assert.equal(enabled.span_id, true);
  });
});
