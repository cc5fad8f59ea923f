import assert from 'node:assert/strict';
import { it } from 'node:test';
import { newId } from '../src/store/ids.ts';

it('ids are well formed and distinct, also across refills of the random pool', () => {
  const ids = Array.from({ length: 1000 }, () => newId('job'));
  for (const id of ids) assert.match(id, /^job_[a-z2-7]{26}$/);
  assert.equal(new Set(ids).size, ids.length);
});
