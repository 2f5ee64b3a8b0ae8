// Reading the proxy's labels from W3C baggage: only the reserved keys, per the W3C syntax.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_BAGGAGE_MEMBERS, baggageLabels } from '../src/telemetry/baggage.ts';

describe('baggageLabels', () => {
  it('reads the reserved keys, percent-decoded, with whitespace and properties ignored', () => {
    assert.deepEqual(
      baggageLabels(
        'userId=alice, spanscope.handler = get_product ;ttl=5,spanscope.route=%2Fproduct%2F%7Bid%7D,' +
          'spanscope.user_agent=load-test',
      ),
      { handler: 'get_product', route: '/product/{id}', userAgent: 'load-test' },
    );
  });

  it('joins several baggage headers and keeps the first occurrence of a key', () => {
    assert.deepEqual(baggageLabels(['a=1,spanscope.handler=first', 'spanscope.handler=second']), {
      handler: 'first',
    });
  });

  it('ignores other keys, other cases of the prefix, members without = and undecodable values', () => {
    assert.deepEqual(baggageLabels(undefined), {});
    assert.deepEqual(baggageLabels(''), {});
    assert.deepEqual(baggageLabels('spanscope.other=x,Spanscope.handler=x,spanscope.route'), {});
    assert.deepEqual(baggageLabels('spanscope.handler=%E0%A4%A,spanscope.user_agent=%FF'), {});
  });

  it('stops reading after the W3C limit of members', () => {
    const filler = Array.from({ length: MAX_BAGGAGE_MEMBERS }, (_, i) => `k${i}=v`).join(',');
    assert.deepEqual(baggageLabels(`${filler},spanscope.handler=late`), {});
    assert.deepEqual(baggageLabels(`spanscope.handler=early,${filler}`), { handler: 'early' });
  });
});
