import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { advanceRetirement, type Retirement, type RetirementView } from '../../../sidecar/records/retirement.js';
import { openStateStore, retirementsOf } from '../../../sidecar/records/store.js';

/** The retirements of the state file, as the sidecar opens it. */
async function openRetirementStore(file: string) {
  const opened = await openStateStore(file);
  return opened.ok ? { ok: true as const, value: retirementsOf(opened.value) } : opened;
}

const base: Retirement = { containerId: 'c1', backend: 'be_app', server: 'hsc-web-1', stage: 'draining', startedAt: 0, deadlineAt: 60_000, quietReads: 0 };
const view = (over: Partial<RetirementView> = {}): RetirementView => ({
  containerRunning: true,
  serverPresent: true,
  adminState: 'drain',
  load: { sessions: 0, queue: 0 },
  ...over,
});

describe('advanceRetirement', () => {
  it.each<[string, Partial<Retirement>, Partial<RetirementView>, number, Partial<Retirement> | undefined, readonly string[], string | undefined]>([
    ['applies the drain it recorded (a crash came in between)', {}, { adminState: 'ready' }, 0, { stage: 'draining', quietReads: 0 }, ['set-drain'], undefined],
    ['counts one quiet read', {}, {}, 0, { stage: 'draining', quietReads: 1 }, [], undefined],
    ['a busy read starts the count again', { quietReads: 1 }, { load: { sessions: 2, queue: 0 } }, 0, { quietReads: 0 }, [], undefined],
    ['an unreadable load is not quiet', { quietReads: 1 }, { load: undefined }, 0, { quietReads: 0 }, [], undefined],
    ['two quiet reads end the drain and ask for the removal', { quietReads: 1 }, {}, 0, { stage: 'drained' }, ['request-removal'], 'drained'],
    ['the deadline forces maintenance', {}, { load: { sessions: 3, queue: 1 } }, 60_000, { stage: 'drained', forced: true }, ['set-maint', 'request-removal'], 'forced'],
    ['drained, server still there: ask again', { stage: 'drained' }, { adminState: 'maint' }, 0, { stage: 'drained' }, ['request-removal'], undefined],
    ['drained, state lost to a reload: drain again, ask again', { stage: 'drained' }, { adminState: 'ready' }, 0, { stage: 'drained' }, ['set-drain', 'request-removal'], undefined],
    ['forced, state lost to a reload: maintenance again', { stage: 'drained', forced: true }, { adminState: 'drain' }, 0, { stage: 'drained' }, ['set-maint', 'request-removal'], undefined],
    ['drained, server gone: stop that container', { stage: 'drained' }, { serverPresent: false }, 0, { stage: 'removed' }, ['stop-container'], undefined],
    ['removed, container still running: stop it (again)', { stage: 'removed' }, { serverPresent: false }, 0, { stage: 'removed' }, ['stop-container'], undefined],
    ['container gone: done', { stage: 'removed' }, { containerRunning: false, serverPresent: false }, 0, undefined, [], undefined],
    ['container died mid-drain: done, the reconciler removes its server', {}, { containerRunning: false }, 0, undefined, [], undefined],
    ['server removed by someone else mid-drain: stop the container', {}, { serverPresent: false }, 0, { stage: 'removed' }, ['stop-container'], undefined],
  ])('%s', (_name, record, seen, now, next, effects, drain) => {
    const step = advanceRetirement({ ...base, ...record }, view(seen), now);
    if (next === undefined) expect(step.next).toBeUndefined();
    else expect(step.next).toMatchObject(next);
    expect(step.effects).toEqual(effects);
    expect(step.drain).toBe(drain);
    expect(step.reason).not.toBe('');
  });
});

describe('the retirement store', () => {
  it('keeps its records across a reopen, written whole', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hsc-unit-'));
    try {
      const file = join(dir, 'state', 'retirements.json');
      const first = await openRetirementStore(file);
      if (!first.ok) throw new Error(first.error.message);
      expect(first.value.list()).toEqual([]);
      expect((await first.value.put(base)).ok).toBe(true);
      expect((await first.value.put({ ...base, stage: 'drained' })).ok).toBe(true);
      const again = await openRetirementStore(file);
      expect(again.ok && again.value.list()).toEqual([{ ...base, stage: 'drained' }]);
      expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ format: 2 });
      if (again.ok) await again.value.remove('c1');
      const empty = await openRetirementStore(file);
      expect(empty.ok && empty.value.list()).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a malformed file instead of forgetting a scale-down', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hsc-unit-'));
    try {
      const file = join(dir, 'retirements.json');
      await writeFile(file, '{"retirements": [{"containerId": 1}]}');
      const opened = await openRetirementStore(file);
      expect(!opened.ok && opened.error.kind).toBe('malformed');
      await writeFile(file, 'not json');
      const garbled = await openRetirementStore(file);
      expect(!garbled.ok && garbled.error.message).toMatch(/not JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
