// The soak's chaos: one event at a time, every 10–30 s (seeded), each chosen from the list
// below, each printed as one line. An event runs its action to its end (a fault that lasts a few
// seconds is undone within the event), so two events never touch the same thing at once (the
// runtime socket moved aside while HAProxy reloads would leave the live worker without its
// socket: a fault of the soak's, not of the sidecar's). What an operator undoes later (an
// undrain, the autoscaler back to automatic, a stopped container removed, a stale transaction
// deleted) is a follow-up, run at its time or, at the end of the chaos, at once.
//
// The events, from the issue and from the fault suite (test/faults) where a fault applies to a
// long run beside other faults:
//   scale-up, scale-down          PUT /v1/autoscaler/replicas, later POST /v1/autoscaler/resume
//   docker-stop, docker-restart   a replica stopped or restarted behind the sidecar's back
//   replica-kill                  SIGKILL of a replica (fault 7), then removed as Compose would
//   drain                         hsc drain <server>, later hsc undrain
//   reload-master-cli, reload-sigusr2  an operator's reload of HAProxy (fault 10a)
//   sidecar-kill                  SIGKILL of the sidecar at a random moment, restarted with the same settings
//   sidecar-kill-mid-scale        SIGKILL just after a count was set by hand (faults 1a, 1b)
//   sidecar-restart               SIGTERM and start again (fault 9)
//   writer-unreachable            the runtime socket refusing / the Data Plane API stopped (fault 2)
//   bad-reload                    an operator's edit HAProxy refuses, reloaded, then fixed (fault 3)
//   docker-api-cut                the sidecar's Docker connections cut and refused for a while (fault 4a)
//   metrics-down                  HAProxy's metrics endpoint disabled for a while (fault 5)
//   concurrent-writer             another writer adding and removing its own server (fault 6)
//   stale-transaction             a transaction left open by a crashed writer, dataplane only (fault 8)
// Not here: dockerd restarted (fault 4b) would restart the Docker daemon other work on this
// machine uses; HAProxy restarted (fault 10b) fails every request sent while nothing listens,
// which no sidecar can prevent and the soak may not excuse.
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { docker } from '../../devenv/containers.js';
import { applyInTransaction } from '../../sidecar/dataplane/client.js';
import type { DockerProxy } from '../../test/faults/docker-proxy.js';
import type { Rng } from './soak-rng.js';
import { between, pick } from './soak-rng.js';
import type { CrashWindow } from './soak-load.js';
import { serverNameOf, socketCommand, type SoakContainer, type SoakWorld } from './soak-world.js';

export const EVENT_KINDS = [
  'scale-up',
  'scale-down',
  'docker-stop',
  'docker-restart',
  'replica-kill',
  'drain',
  'reload-master-cli',
  'reload-sigusr2',
  'sidecar-kill',
  'sidecar-kill-mid-scale',
  'sidecar-restart',
  'writer-unreachable',
  'bad-reload',
  'docker-api-cut',
  'metrics-down',
  'concurrent-writer',
  'stale-transaction',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** The issue's own events come up twice as often as the fault suite's. */
const WEIGHT: Readonly<Record<EventKind, number>> = {
  'scale-up': 2,
  'scale-down': 2,
  'docker-stop': 2,
  'docker-restart': 2,
  'replica-kill': 1,
  drain: 2,
  'reload-master-cli': 2,
  'reload-sigusr2': 2,
  'sidecar-kill': 2,
  'sidecar-kill-mid-scale': 1,
  'sidecar-restart': 1,
  'writer-unreachable': 1,
  'bad-reload': 1,
  'docker-api-cut': 1,
  'metrics-down': 1,
  'concurrent-writer': 1,
  'stale-transaction': 1,
};

export interface ChaosEvent {
  readonly index: number;
  readonly kind: EventKind;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly description: string;
  /** Why it did nothing (no target, refused): not counted as injected. */
  readonly skipped?: string;
  /** The action itself failed (the soak's fault or the product's): the run fails. */
  readonly error?: string;
}

/** What the soak did that the checker must know. */
export interface Ledger {
  readonly operatorDrains: Set<string>;
  readonly foreignServers: Set<string>;
  readonly foreignTransactions: Set<string>;
  sidecarDownOnPurpose: boolean;
  readonly crashes: CrashWindow[];
}

export interface ChaosOptions {
  readonly world: SoakWorld;
  readonly rng: Rng;
  readonly dockerProxy: DockerProxy;
  readonly ledger: Ledger;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** The kinds to draw from (default: every kind that applies to the driver). */
  readonly kinds?: readonly EventKind[];
  /** No event starts after this (ms since the epoch). */
  readonly until: number;
  readonly minGapMs: number;
  readonly maxGapMs: number;
  readonly log: (message: string) => void;
}

class Skip extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The pid of the process whose command line names `marker` (a file of the instance's directory). */
function pidOf(marker: string): number {
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(marker)) return Number(entry);
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error(`no process runs with ${marker}`);
}

export interface Chaos {
  readonly events: readonly ChaosEvent[];
  /** Resolves when no event is left to start and every follow-up ran. */
  readonly done: Promise<void>;
}

export function startChaos(options: ChaosOptions): Chaos {
  const { world, rng, ledger, log } = options;
  const events: ChaosEvent[] = [];
  const followUps = new Map<number, { label: string; run: () => Promise<void>; timer: NodeJS.Timeout }>();
  let followUpIds = 0;
  const runningFollowUps = new Set<Promise<void>>();
  const runFollowUp = (label: string, run: () => Promise<void>): Promise<void> => {
    const p = run().then(
      () => undefined,
      (error: unknown) => log(`follow-up ${label} failed: ${error instanceof Error ? error.message : String(error)}`),
    );
    runningFollowUps.add(p);
    void p.finally(() => runningFollowUps.delete(p));
    return p;
  };
  /** An operator's later step; at the end of the chaos, every one still waiting runs at once. */
  const later = (ms: number, label: string, run: () => Promise<void>): void => {
    const id = ++followUpIds;
    const timer = setTimeout(() => {
      followUps.delete(id);
      void runFollowUp(label, run);
    }, ms);
    followUps.set(id, { label, run, timer });
  };

  const running = async (): Promise<SoakContainer[]> => (await world.containers()).filter((c) => c.state === 'running');
  const someReplica = async (): Promise<SoakContainer> => {
    const list = await running();
    if (list.length === 0) throw new Skip('no running replica');
    return pick(rng, list);
  };
  const admin = async (method: 'PUT' | 'POST', path: string, body?: unknown): Promise<void> => {
    const answer = await world.admin(method, path, body);
    if (answer.status !== 200) throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  };
  const resumeLater = (): void =>
    later(between(rng, 10_000, 20_000), 'autoscaler back to automatic', async () => {
      // The sidecar may be down for a moment (another event): try for a while.
      for (let attempt = 0; ; attempt++) {
        const answer = await world.admin('POST', '/v1/autoscaler/resume');
        if (answer.status === 200) {
          log('follow-up: POST /v1/autoscaler/resume (back to automatic)');
          return;
        }
        if (attempt >= 15) throw new Error(`POST /v1/autoscaler/resume: ${answer.status} ${JSON.stringify(answer.body)}`);
        await sleep(2_000);
      }
    });
  /** Sets the count by hand: `direction` more or fewer than running now, within min/max. */
  const setCount = async (direction: 1 | -1): Promise<string> => {
    const now = (await running()).length;
    const target = Math.max(options.minReplicas, Math.min(options.maxReplicas, now + direction * between(rng, 1, 2)));
    if (target === now) throw new Skip(`already at the ${direction > 0 ? 'maximum' : 'minimum'} (${now})`);
    await admin('PUT', '/v1/autoscaler/replicas', { replicas: target });
    resumeLater();
    return `PUT /v1/autoscaler/replicas ${now} → ${target}`;
  };
  const restartSidecar = async (): Promise<void> => {
    try {
      await world.startSidecar();
    } catch (error) {
      log(`the sidecar did not start again (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); trying once more`);
      await world.startSidecar();
    } finally {
      ledger.sidecarDownOnPurpose = world.sidecar === undefined;
    }
  };
  /** Until HAProxy's checks take the server out (not UP, or gone), requests may still go to a dead container. */
  const outOfRotation = async (server: string, since: number): Promise<number> => {
    while (Date.now() < since + 20_000) {
      const state = await world.servers().catch(() => undefined);
      const found = state?.find((s) => s.name === server);
      if (state !== undefined && (found === undefined || found.operational !== 2)) return Date.now();
      await sleep(50);
    }
    return Date.now();
  };
  const reloadMaster = async (): Promise<void> => {
    process.kill(await world.masterPid(), 'SIGUSR2');
  };
  const dropOperatorDrain = (server: string, why: string): void => {
    if (ledger.operatorDrains.delete(server)) log(`(the soak's drain of ${server} ends: ${why})`);
  };

  const actions: Readonly<Record<EventKind, { readonly applies: boolean; readonly run: () => Promise<string> }>> = {
    'scale-up': { applies: true, run: () => setCount(1) },
    'scale-down': { applies: true, run: () => setCount(-1) },
    'docker-stop': {
      applies: true,
      async run() {
        const victim = await someReplica();
        dropOperatorDrain(serverNameOf(victim.number), 'its container is stopped');
        await docker.getContainer(victim.id).stop({ t: 10 });
        later(between(rng, 15_000, 25_000), `remove stopped ${victim.name}`, async () => {
          await docker.getContainer(victim.id).remove({ force: true });
          log(`follow-up: removed the stopped container ${victim.name}`);
        });
        return `docker stop ${victim.name} (graceful: nginx finishes its requests; no drain first)`;
      },
    },
    'docker-restart': {
      applies: true,
      async run() {
        const victim = await someReplica();
        dropOperatorDrain(serverNameOf(victim.number), 'its container is restarted');
        await docker.getContainer(victim.id).restart({ t: 10 });
        const after = (await world.containers()).find((c) => c.id === victim.id);
        return `docker restart ${victim.name} (published port ${victim.hostPort} → ${after?.hostPort ?? '?'})`;
      },
    },
    'replica-kill': {
      applies: true,
      async run() {
        const victim = await someReplica();
        const server = serverNameOf(victim.number);
        dropOperatorDrain(server, 'its container is killed');
        const killedAt = Date.now();
        await docker.getContainer(victim.id).kill();
        // What a crashed replica leaves is the operator's (or Compose's) to remove.
        await docker.getContainer(victim.id).remove({ force: true });
        const out = await outOfRotation(server, killedAt);
        // Requests sent just before the kill are answered (or not) after it.
        ledger.crashes.push({ server, from: killedAt - 100, to: out + 300 });
        return `SIGKILL ${victim.name} and removed; ${server} out of HAProxy's rotation ${out - killedAt} ms later`;
      },
    },
    drain: {
      applies: true,
      async run() {
        const [servers, list] = await Promise.all([world.servers(), running()]);
        const names = new Set(list.filter((c) => c.health === 'healthy').map((c) => serverNameOf(c.number)));
        const candidates = servers.filter((s) => s.admin === 'ready' && s.operational === 2 && names.has(s.name) && !ledger.operatorDrains.has(s.name));
        if (candidates.length < 2) throw new Skip(`${candidates.length} ready server(s): not draining the last`);
        const target = pick(rng, candidates).name;
        const drained = await world.hsc(['drain', `${world.haproxy.backend}/${target}`]);
        if (drained.code === 1) throw new Skip(`hsc drain refused: ${drained.output}`);
        if (drained.code !== 0) throw new Error(`hsc drain ${target} exited ${drained.code}: ${drained.output}`);
        ledger.operatorDrains.add(target);
        // Held long enough for other events to happen to a drained server (a reload, a sidecar
        // restart), and for a drain lost to one of them to outlast the checker's bound.
        later(between(rng, 20_000, 60_000), `undrain ${target}`, async () => {
          if (!ledger.operatorDrains.has(target)) return;
          for (let attempt = 0; ; attempt++) {
            const undrained = await world.hsc(['undrain', `${world.haproxy.backend}/${target}`]);
            // 1: refused, here because the server is gone meanwhile: nothing left to undo.
            if (undrained.code === 0 || undrained.code === 1) {
              ledger.operatorDrains.delete(target);
              log(`follow-up: hsc undrain ${target}: ${undrained.code === 0 ? 'done' : `refused (${undrained.output.split('\n')[0] ?? ''})`}`);
              return;
            }
            if (attempt >= 15) throw new Error(`hsc undrain ${target} exited ${undrained.code}: ${undrained.output}`);
            await sleep(2_000);
          }
        });
        return `hsc drain ${world.haproxy.backend}/${target}`;
      },
    },
    'reload-master-cli': {
      applies: true,
      async run() {
        const answer = await world.masterCommand('reload');
        return `master CLI reload: ${answer.trim().split('\n')[0] ?? '(no answer)'}`;
      },
    },
    'reload-sigusr2': {
      applies: true,
      async run() {
        await reloadMaster();
        return 'SIGUSR2 to the HAProxy master';
      },
    },
    'sidecar-kill': {
      applies: true,
      async run() {
        const pause = between(rng, 500, 3_000);
        ledger.sidecarDownOnPurpose = true;
        await world.killSidecar();
        await sleep(pause);
        await restartSidecar();
        return `SIGKILL of the sidecar, started again ${pause} ms later`;
      },
    },
    'sidecar-kill-mid-scale': {
      applies: true,
      async run() {
        const direction = rng() < 0.5 ? 1 : -1;
        const set = await setCount(direction);
        const delay = between(rng, 0, 2_500);
        await sleep(delay);
        ledger.sidecarDownOnPurpose = true;
        await world.killSidecar();
        await sleep(1_000);
        await restartSidecar();
        return `${set}, SIGKILL of the sidecar ${delay} ms later, started again (the count set by hand is kept across the kill, from the state file, until the resume that follows)`;
      },
    },
    'sidecar-restart': {
      applies: true,
      async run() {
        ledger.sidecarDownOnPurpose = true;
        await world.stopSidecar();
        await restartSidecar();
        return 'SIGTERM of the sidecar, started again';
      },
    },
    'writer-unreachable': {
      applies: true,
      async run() {
        const seconds = between(rng, 3, 6);
        if (world.driver === 'dataplane') {
          const pid = pidOf(join(world.haproxy.dir, 'dataplaneapi.yml'));
          process.kill(pid, 'SIGSTOP');
          try {
            await sleep(seconds * 1000);
          } finally {
            process.kill(pid, 'SIGCONT');
          }
          return `Data Plane API stopped (SIGSTOP) for ${seconds} s`;
        }
        // The socket's file stays, nobody listens on it: every connection is refused. The
        // checker reads HAProxy through the moved socket meanwhile.
        const socket = world.haproxy.runtimeSocket;
        const away = `${socket}.away`;
        await rename(socket, away);
        world.socketPath = away;
        try {
          const refusing = createServer();
          await new Promise<void>((resolve) => refusing.listen(socket, resolve));
          // Closing a Unix socket's server in Node leaves its file: a path that refuses.
          await new Promise<void>((resolve) => refusing.close(() => resolve()));
          await sleep(seconds * 1000);
        } finally {
          await rm(socket, { force: true });
          await rename(away, socket);
          world.socketPath = socket;
        }
        return `runtime socket refusing connections for ${seconds} s`;
      },
    },
    'bad-reload': {
      applies: true,
      async run() {
        const file = world.haproxy.configFile;
        // An operator's edit the Data Plane API's parser takes but HAProxy refuses (no such file).
        const badLine = `    errorfile 503 ${world.dir}/no-such-errorfile.http`;
        const good = await readFile(file, 'utf8');
        const broken = good.replace(/^(defaults[^\n]*\n)/m, `$1${badLine}\n`);
        if (broken === good) throw new Error('haproxy.cfg has no defaults section to break');
        await writeFile(file, broken);
        await reloadMaster();
        await sleep(4_000);
        // The operator fixes the file, keeping what the sidecar wrote into it meanwhile.
        const repaired = (await readFile(file, 'utf8')).split('\n').filter((line) => !line.includes('no-such-errorfile')).join('\n');
        if (world.driver === 'runtime' || world.haproxy.dataplaneUrl === undefined) {
          await writeFile(file, repaired);
          await reloadMaster();
        } else {
          // The Data Plane API keeps the file it read in memory: through its raw endpoint.
          const client = world.dataplane();
          const version = await client?.configurationVersion();
          if (version === undefined || !version.ok) throw new Error(`Data Plane API version: ${version?.ok === false ? version.error.message : 'no client'}`);
          const authorization = `Basic ${Buffer.from(`${world.haproxy.dataplaneUser}:${world.haproxy.dataplanePassword}`).toString('base64')}`;
          const posted = await fetch(`${world.haproxy.dataplaneUrl}/v3/services/haproxy/configuration/raw?version=${version.value}`, {
            method: 'POST',
            headers: { authorization, 'content-type': 'text/plain' },
            body: repaired.replace(/^# _md5hash=.*\n/m, ''),
            signal: AbortSignal.timeout(30_000),
          });
          if (posted.status >= 300) throw new Error(`raw configuration: ${posted.status} ${await posted.text()}`);
        }
        return 'haproxy.cfg broken (missing errorfile) and reloaded (refused), fixed 4 s later and reloaded';
      },
    },
    'docker-api-cut': {
      applies: true,
      async run() {
        const seconds = between(rng, 2, 5);
        options.dockerProxy.cut();
        options.dockerProxy.refuse(true);
        try {
          await sleep(seconds * 1000);
        } finally {
          options.dockerProxy.refuse(false);
        }
        return `the sidecar's Docker connections cut (event stream included) and refused for ${seconds} s`;
      },
    },
    'metrics-down': {
      applies: true,
      async run() {
        const seconds = between(rng, 3, 8);
        await socketCommand(world.socketPath, 'disable frontend fe_stats');
        try {
          await sleep(seconds * 1000);
        } finally {
          await socketCommand(world.socketPath, 'enable frontend fe_stats');
        }
        return `HAProxy's metrics endpoint (frontend fe_stats) disabled for ${seconds} s`;
      },
    },
    'concurrent-writer': {
      applies: true,
      async run() {
        const name = 'soak-other-writer';
        const backend = world.haproxy.backend;
        ledger.foreignServers.add(name);
        const client = world.dataplane();
        let writes = 0;
        const present = async (): Promise<boolean> => (await world.servers()).some((s) => s.name === name);
        const toggle = async (): Promise<void> => {
          const there = await present();
          if (client !== undefined) {
            await applyInTransaction(
              client,
              (id) => (there ? client.deleteServer(backend, name, id) : client.addServer(backend, { name, address: '127.0.0.1', port: 9, weight: 0 }, id)),
              20_000,
            );
          } else if (there) {
            await socketCommand(world.socketPath, `set server ${backend}/${name} state maint`);
            await socketCommand(world.socketPath, `del server ${backend}/${name}`);
          } else {
            // Weight 0 and in maintenance (a server added at run time starts there): never takes a request.
            await socketCommand(world.socketPath, `add server ${backend}/${name} 127.0.0.1:9 weight 0`);
          }
          writes++;
          // A writer at an operator's pace, not a tight loop over the socket.
          await sleep(100);
        };
        const until = Date.now() + between(rng, 3_000, 6_000);
        while (Date.now() < until) await toggle();
        if (await present()) await toggle();
        // Its last write may still be on its way through a reload: the name stays foreign a while.
        later(5_000, `forget ${name}`, () => Promise.resolve(void ledger.foreignServers.delete(name)));
        return `another writer toggled its own server ${name} ${writes} times`;
      },
    },
    'stale-transaction': {
      applies: world.driver === 'dataplane',
      async run() {
        const client = world.dataplane();
        if (client === undefined) throw new Skip('runtime driver: no transactions');
        const version = await client.configurationVersion();
        if (!version.ok) throw new Error(version.error.message);
        const opened = await client.startTransaction(version.value);
        if (!opened.ok) throw new Error(opened.error.message);
        const id = opened.value.id;
        ledger.foreignTransactions.add(id);
        // The crashed writer got as far as a change inside its transaction, never to its commit.
        const change = await client.addServer(world.haproxy.backend, { name: 'soak-crashed-writer', address: '127.0.0.1', port: 9 }, id);
        later(between(rng, 10_000, 20_000), `delete stale transaction ${id}`, async () => {
          const deleted = await client.deleteTransaction(id);
          if (!deleted.ok) throw new Error(`deleting the stale transaction ${id}: ${deleted.error.message}`);
          ledger.foreignTransactions.delete(id);
          log(`follow-up: deleted the stale transaction ${id}`);
        });
        return `transaction ${id} opened${change.ok ? ' with a server added in it' : ''} and left open (a crashed writer's)`;
      },
    },
  };
  const kinds = (options.kinds ?? EVENT_KINDS).filter((k) => actions[k].applies);
  if (kinds.length === 0) throw new Error(`no event kind applies to the ${world.driver} driver`);
  const bag = kinds.flatMap((k) => Array.from({ length: WEIGHT[k] }, () => k));

  const done = (async () => {
    for (let index = 1; ; index++) {
      // An event that would start past `until` does not wait for it: the follow-ups run now,
      // while the load still runs, and the end is checked after them.
      const gap = between(rng, options.minGapMs, options.maxGapMs);
      if (Date.now() + gap >= options.until) break;
      await sleep(gap);
      const kind = pick(rng, bag);
      const startedAt = Date.now();
      let description = '';
      let skipped: string | undefined;
      let error: string | undefined;
      try {
        description = await actions[kind].run();
      } catch (caught) {
        if (caught instanceof Skip) skipped = caught.message;
        else error = caught instanceof Error ? caught.message.split('\n')[0] ?? caught.message : String(caught);
      }
      const endedAt = Date.now();
      const event: ChaosEvent = { index, kind, startedAt, endedAt, description, ...(skipped === undefined ? {} : { skipped }), ...(error === undefined ? {} : { error }) };
      events.push(event);
      const took = `${((endedAt - startedAt) / 1000).toFixed(1)} s`;
      if (skipped !== undefined) log(`event ${index} ${kind}: skipped (${skipped})`);
      else if (error !== undefined) log(`event ${index} ${kind}: FAILED after ${took}: ${error}`);
      else log(`event ${index} ${kind}: ${description} (${took})`);
      // The sidecar must be back whatever failed above.
      if (world.sidecar === undefined) await restartSidecar().catch((e: unknown) => log(`the sidecar could not be started again: ${String(e)}`));
    }
    // The chaos is over: what an operator would still undo, at once.
    for (const [id, entry] of followUps) {
      clearTimeout(entry.timer);
      followUps.delete(id);
      void runFollowUp(entry.label, entry.run);
    }
    while (runningFollowUps.size > 0) await Promise.all([...runningFollowUps]);
  })();

  return { events, done };
}
