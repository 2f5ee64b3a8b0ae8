import { test } from 'node:test';
import assert from 'node:assert/strict';

test('npm scripts run on Node.js 24 or newer, never a silent fallback to the machine node', () => {
  const major = Number(process.versions.node.split('.')[0]);
  assert.ok(major >= 24, `expected Node >= 24, running ${process.versions.node} from ${process.execPath}`);
});
