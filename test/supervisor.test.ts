// The supervisor every out-of-thread runtime shares: answers matched by id, what a child holds failed
// when it fails or dies, a replacement when it ends unasked (none when asked), and a close that forces a
// child that does not end within the grace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Supervisor, type ChildEvents } from '../src/runtime/supervisor.ts';

/** Children that record what they are sent and are driven by the test through their events. */
function fakeChildren({ endsWhenAsked = true } = {}) {
  const children: { events: ChildEvents<string>; sent: [number, string][]; killed: boolean }[] = [];
  const supervisor = new Supervisor<string, string>((events) => {
    const child = { events, sent: [] as [number, string][], killed: false };
    children.push(child);
    return {
      send: (id, request) => child.sent.push([id, request]),
      end: () => {
        if (endsWhenAsked) setImmediate(() => events.exited(new Error('ended')));
      },
      kill: async () => {
        child.killed = true;
        events.exited(new Error('killed'));
      },
    };
  });
  return { supervisor, children };
}

test('answers are matched by id, in any order', async () => {
  const { supervisor, children } = fakeChildren();
  const first = supervisor.request('a');
  const second = supervisor.request('b');
  assert.equal(supervisor.queued, 2);
  const [idA, idB] = children[0]!.sent.map(([id]) => id);
  children[0]!.events.answer(idB!, 'B');
  children[0]!.events.answer(idA!, 'A');
  assert.deepEqual(await Promise.all([first, second]), ['A', 'B']);
  assert.equal(supervisor.queued, 0);
  await supervisor.close(1000);
});

test('a child that fails fails what it holds; one that dies unasked is replaced', async () => {
  const { supervisor, children } = fakeChildren();
  const held = supervisor.request('a');
  children[0]!.events.failed(new Error('broken'));
  await assert.rejects(held, /broken/);
  const lost = supervisor.request('b');
  children[0]!.events.exited(new Error('exited with code 1'));
  await assert.rejects(lost, /exited with code 1/);
  assert.equal(children.length, 2, 'a new child was started');
  const next = supervisor.request('c');
  assert.deepEqual(
    children[1]!.sent.map(([, request]) => request),
    ['c'],
  );
  children[1]!.events.answer(children[1]!.sent[0]![0], 'C');
  assert.equal(await next, 'C');
  await supervisor.close(1000);
  assert.equal(children.length, 2, 'no child is started after a close');
  assert.equal(children[1]!.killed, false, 'it ended when asked');
});

test('a child that does not end within the grace is killed', async () => {
  const { supervisor, children } = fakeChildren({ endsWhenAsked: false });
  await supervisor.close(20);
  assert.equal(children[0]!.killed, true);
  assert.equal(children.length, 1);
});

test('replacements wait out the backoff of failures in a row; requests sent meanwhile go to the next child', async () => {
  const delays: number[] = [];
  const children: ChildEvents<string>[] = [];
  const sent: [number, string][][] = [];
  const supervisor = new Supervisor<string, string>(
    (events) => {
      children.push(events);
      const mine: [number, string][] = [];
      sent.push(mine);
      return {
        send: (id, request) => mine.push([id, request]),
        end: () => undefined,
        kill: async () => undefined,
      };
    },
    {
      restartDelayMs: (failures) => {
        delays.push(failures);
        return 30;
      },
      closedError: () => new Error('closed while restarting'),
    },
  );
  children[0]!.exited(new Error('crashed'));
  assert.equal(children.length, 1, 'no replacement before its backoff');
  const waiting = supervisor.request('a');
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(children.length, 2, 'the replacement started after its backoff');
  assert.deepEqual(
    sent[1]!.map(([, request]) => request),
    ['a'],
    'the waiting request went to it',
  );
  children[1]!.answer(sent[1]![0]![0], 'A');
  assert.equal(await waiting, 'A');

  children[1]!.exited(new Error('crashed again'));
  await new Promise((resolve) => setTimeout(resolve, 60));
  children[2]!.started(); // serving: the count of failures in a row starts again
  children[2]!.exited(new Error('crashed once more'));
  assert.deepEqual(delays, [1, 2, 1]);

  const stranded = supervisor.request('b');
  await supervisor.close(1000);
  await assert.rejects(stranded, /closed while restarting/);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(children.length, 3, 'no child is started after a close');
});
