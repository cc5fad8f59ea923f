// The bounded model cache: beyond maxLoadedModels a process unloads the least recently used idle model
// version, and loads it again on demand when it is asked for, answering the same.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { deployModel } from './helpers/api.ts';
import { buildIdentityModel, startTestPlatform, type TestPlatform } from './helpers/platform.ts';

let tp: TestPlatform;

before(async () => {
  tp = await startTestPlatform({ config: { maxLoadedModels: 2 } });
  for (const width of [2, 3, 4]) await deployModel(tp, tp.adminKey, `m${width}`, buildIdentityModel(width));
});
after(() => tp.close());

const predict = (width: number) =>
  tp.call('POST', `/v1/models/m${width}/predict`, {
    key: tp.adminKey,
    json: { instances: [Array.from({ length: width }, (_, i) => i + width)] },
  });

const readyModels = async () => {
  const ready = [];
  for (const width of [2, 3, 4]) {
    const answer = await tp.call('GET', `/v2/models/m${width}/ready`, { key: tp.adminKey });
    if (answer.status === 200) ready.push(width);
  }
  return ready;
};

test('at most maxLoadedModels versions stay loaded; an unloaded one loads again when asked for', async () => {
  for (const width of [2, 3, 4, 2, 3, 4, 2]) {
    const answer = await predict(width);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.outputs.y, [Array.from({ length: width }, (_, i) => i + width)]);
  }
  // Unloading runs after the answer: give it a moment, boundedly.
  let ready: number[] = [];
  for (let i = 0; i < 50; i++) {
    ready = await readyModels();
    if (ready.length <= 2) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(ready.length, 2, `ready: ${ready.join(', ')}`);
  assert.ok(ready.includes(2), 'the most recently used stays loaded');
  assert.ok(!ready.includes(3), 'the least recently used was unloaded');
});
