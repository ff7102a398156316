// What the simulator puts around the sidecar's own control loop: a pool of containers (Docker),
// the HAProxy in front of them (its servers, their admin states, its exporter's figures) and the
// traffic, second by second. The sidecar's controller reads and acts on it through the same ports
// it has in production (sidecar/autoscale/controller.ts: pool, sampler's scrape, Docker's CPU,
// start and stop, admin states, server load), so the only things modelled are the outside world
// and time; see simulate.ts for the wiring.
//
// Two kinds of instance: an M/M/c station whose requests wait in HAProxy's queue when every worker
// is busy (the stack's nginx + PHP-FPM, the policy comparisons' model), and the local
// environment's nginx /work, a token bucket per instance (limit_req: a rate, a line of `burst`
// waiting requests at the instance, a 503 beyond it, then a fixed time of work).
import type { PromSample, ScrapeResult } from '../haproxy-metrics/exporter.js';
import type { AdminState, ConfiguredServer, RuntimeServer } from '../driver/port.js';
import type { Replica } from '../scaling/replicas.js';
import { ok } from '../edge/result.js';
import { stationFigures } from './queueing.js';
import type { Random } from './random.js';

/** M/M/c: `workers` per instance, exponential service of mean `serviceTime` seconds; the queue is HAProxy's. */
export interface QueueingStation {
  readonly kind: 'mmc';
  readonly workers: number;
  readonly serviceTime: number;
}

/** nginx's limit_req: `rate` per second per instance, `burst` requests waiting at it, 503 beyond; then `workSeconds` of work. */
export interface TokenBucketStation {
  readonly kind: 'token-bucket';
  readonly rate: number;
  readonly burst: number;
  readonly workSeconds: number;
}

export type Station = QueueingStation | TokenBucketStation;

export interface WorldSettings {
  readonly station: Station;
  /** Seconds from "start a container" to its server serving (start-up, reconcile, first health check). */
  readonly startupSeconds: number;
  /**
   * Seconds between the containers of one scale-up: Docker creates and starts them one after the
   * other (the local environment's load step: about one a second), so the last serves later.
   */
  readonly startupStaggerSeconds?: number;
  /** HAProxy's `timeout queue`: a request queued longer fails with 503 (M/M/c only). */
  readonly queueTimeoutSeconds: number;
  /** CPU of one instance at full utilisation, as a fraction of one core. */
  readonly cpuAtFullLoad: number;
  readonly initialReplicas: number;
  /** A second violates the SLO when its p99 exceeds this or a request failed. */
  readonly sloP99Seconds: number;
}

export const BACKEND = 'be_app';

/** Requests per second one instance serves at saturation. */
export function instanceCapacity(station: Station): number {
  return station.kind === 'mmc' ? station.workers / station.serviceTime : station.rate;
}

/** One second of traffic, as the world served it. */
export interface SecondOutcome {
  readonly arrivals: number;
  readonly failed: number;
  /** Worst response time of the second's requests (p99); Infinity when none could be served. */
  readonly p99: number;
  readonly violated: boolean;
  /** Servers in rotation and containers running (what instance-hours count). */
  readonly serving: number;
  readonly running: number;
}

/** Load offered in one second: an open loop (requests per second) and closed-loop clients. */
export interface Offered {
  readonly rate: number;
  readonly clients: number;
}

interface Container {
  readonly id: string;
  readonly number: number;
  readonly server: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly readyAt: number;
  running: boolean;
  /** In HAProxy's backend (added once ready, removed by the reconciler after a retirement's drain). */
  inHaproxy: boolean;
  admin: AdminState;
  /** Requests waiting at this instance (token bucket) and in service. */
  backlog: number;
  sessions: number;
  /** Utilisation of the last seconds, newest last (for Docker's CPU figure). */
  readonly busy: number[];
}

/** Seconds of per-container utilisation kept: the longest CPU window a policy reads. */
const BUSY_HISTORY = 60;
/** HAProxy's response-time average is over its last 1024 requests. */
const RESPONSE_AVERAGE_REQUESTS = 1024;

export interface World {
  /** Serves one second of offered load; `now` is the second's end. */
  step(offered: Offered, random: Random): SecondOutcome;
  /** HAProxy's exporter, as the sampler scrapes it. */
  scrape(): ScrapeResult;
  /**
   * Docker's CPU of these containers over the last `windowSeconds` (Docker's stats: the last
   * second); `readyOnly` leaves out containers not in rotation, as Kubernetes' HPA does.
   */
  cpu(ids: readonly string[], windowSeconds: number, readyOnly: boolean): number | undefined;
  /** The service's running replicas and their servers, as discovery names them. */
  replicas(): { readonly replicas: Replica[]; readonly serverOf: Map<string, string> };
  startLike(count: number): string[];
  stop(id: string): void;
  configuredServers(): ConfiguredServer[];
  runtimeServers(): RuntimeServer[];
  setAdminState(server: string, state: AdminState): void;
  serverLoad(server: string): { sessions: number; queue: number } | undefined;
  /** The reconciler's pass: servers of stopped containers, and of retirees done draining, leave HAProxy. */
  reconcile(removable: (containerId: string) => boolean): void;
  /** When each container started for a scale-up serves (ms), by id. */
  readyAt(id: string): number | undefined;
}

export function createWorld(settings: WorldSettings, now: () => number): World {
  const { station } = settings;
  const capacity = instanceCapacity(station);
  const containers: Container[] = [];
  let nextNumber = 1;
  let requestsTotal = 0;
  let queue = 0; // HAProxy's backend queue (M/M/c)
  let responseAverage = 0;

  const create = (readyAt: number): Container => {
    const number = nextNumber++;
    const container: Container = {
      id: `sim${String(number).padStart(4, '0')}`,
      number,
      server: `hsc-app-${number}`,
      createdAt: now(),
      readyAt,
      running: true,
      inHaproxy: false,
      admin: 'ready',
      backlog: 0,
      sessions: 0,
      busy: [],
    };
    containers.push(container);
    return container;
  };
  for (let i = 0; i < settings.initialReplicas; i++) create(now());

  const inRotation = (c: Container): boolean => c.running && c.inHaproxy && c.admin === 'ready';

  function admit(): void {
    // The reconciler adds a started container's server once it is healthy; its first health
    // check puts it in rotation. Both are in startupSeconds.
    for (const c of containers) if (c.running && !c.inHaproxy && c.readyAt <= now()) c.inHaproxy = true;
  }

  // Within a second, the queueing formulas take the offered rate (their steady state is for a mean
  // arrival rate); a second's Poisson count above capacity shows as the backlog it leaves.
  function serveQueueing(st: QueueingStation, arrivals: number, rate: number, serving: Container[]): { served: number; dropped: number; p99: number; mean: number; busy: number } {
    const cap = serving.length * capacity;
    const available = queue + arrivals;
    const served = Math.min(available, cap);
    queue = available - served;
    let dropped = 0;
    const maxQueue = cap * settings.queueTimeoutSeconds;
    if (queue > maxQueue) {
      dropped = queue - maxQueue;
      queue = maxQueue;
    }
    if (queue > 0) {
      const wait = queue / cap;
      return { served, dropped, p99: wait + st.serviceTime * Math.log(100), mean: wait + st.serviceTime, busy: 1 };
    }
    const figures = stationFigures(st, rate / serving.length);
    return { served, dropped, p99: figures.p99Response, mean: figures.meanResponse, busy: figures.utilisation };
  }

  function serveTokenBucket(st: TokenBucketStation, arrivals: number, rate: number, serving: Container[]): { served: number; dropped: number; p99: number; mean: number; busy: number } {
    // Round robin: an equal share to each instance in rotation; each has its own line.
    const share = arrivals / serving.length;
    let served = 0;
    let dropped = 0;
    let p99 = 0;
    let meanSum = 0;
    let busySum = 0;
    for (const c of serving) {
      const waiting = c.backlog + share;
      const out = Math.min(waiting, st.rate);
      let left = waiting - out;
      if (left > st.burst) {
        dropped += left - st.burst;
        left = st.burst;
      }
      c.backlog = left;
      served += out;
      const rho = Math.min(rate / serving.length / st.rate, 0.999);
      if (left > 0) {
        p99 = Math.max(p99, left / st.rate + st.workSeconds);
        meanSum += (left / 2 / st.rate + st.workSeconds) * out;
      } else {
        // M/D/1: Poisson arrivals spaced 1/rate apart by the bucket; the wait's tail is about exponential.
        const meanWait = rho / (2 * st.rate * (1 - rho));
        p99 = Math.max(p99, meanWait * Math.log(100) + st.workSeconds);
        meanSum += (meanWait + st.workSeconds) * out;
      }
      busySum += Math.min(1, out / st.rate);
    }
    return { served, dropped, p99, mean: served > 0 ? meanSum / served : st.workSeconds, busy: busySum / serving.length };
  }

  /** Closed-loop clients on the pool: each sends its next request when its answer comes. */
  function serveClients(clients: number, serving: Container[]): { served: number; p99: number; inFlight: number } {
    if (clients <= 0 || serving.length === 0) return { served: 0, p99: 0, inFlight: 0 };
    const work = station.kind === 'mmc' ? station.serviceTime : station.workSeconds;
    const served = Math.min(clients / work, serving.length * capacity);
    // Every client has one request in flight, waiting at an instance or in service.
    return { served, p99: clients / served, inFlight: clients };
  }

  return {
    step(offered, random) {
      admit();
      const serving = containers.filter(inRotation);
      const arrivals = random.poisson(offered.rate);
      let served = 0;
      let dropped = 0;
      let p99 = 0;
      let mean = 0;
      let busy = 0;
      let closedInFlight = 0;
      let openServed = 0;
      if (serving.length === 0) {
        // HAProxy answers 503 at once when no server is up.
        dropped = arrivals + queue + offered.clients;
        queue = 0;
        p99 = Infinity;
      } else {
        const closed = serveClients(offered.clients, serving);
        const open = station.kind === 'mmc' ? serveQueueing(station, arrivals, offered.rate, serving) : serveTokenBucket(station, arrivals, offered.rate, serving);
        served = open.served + closed.served;
        dropped = open.dropped;
        p99 = Math.max(open.p99, closed.p99);
        // An overloaded instance's steady state has no mean; its requests wait up to the queue timeout.
        const openMean = Number.isFinite(open.mean) ? open.mean : settings.queueTimeoutSeconds;
        mean = served > 0 ? (openMean * open.served + closed.p99 * closed.served) / served : openMean;
        busy = Math.min(1, open.busy + closed.served / (serving.length * capacity));
        closedInFlight = closed.inFlight;
        openServed = open.served;
      }
      // HAProxy counts a request in its backend's counter when it ends, served or failed.
      requestsTotal += served + dropped;
      if (served > 0) responseAverage += (mean - responseAverage) * (1 - Math.pow(1 - 1 / RESPONSE_AVERAGE_REQUESTS, served));
      // Sessions at each instance: its share of what is in service (Little's law) and its own line.
      const work = station.kind === 'mmc' ? station.serviceTime : station.workSeconds;
      for (const c of containers) {
        if (!c.running) continue;
        if (inRotation(c)) {
          const inService = (openServed * work) / serving.length;
          c.sessions = Math.round(inService + c.backlog + closedInFlight / serving.length);
          c.busy.push(busy);
        } else {
          // Out of rotation (starting, draining): its last requests end within the second.
          c.sessions = 0;
          c.backlog = 0;
          c.busy.push(0);
        }
        if (c.busy.length > BUSY_HISTORY) c.busy.shift();
      }
      return {
        arrivals: arrivals + offered.clients,
        failed: dropped,
        p99,
        violated: p99 > settings.sloP99Seconds || dropped > 0,
        serving: serving.length,
        running: containers.filter((c) => c.running).length,
      };
    },

    scrape() {
      const proxy = { proxy: BACKEND };
      const inBackend = containers.filter((c) => c.running && c.inHaproxy);
      const samples: PromSample[] = [
        { name: 'haproxy_backend_http_requests_total', labels: proxy, value: Math.round(requestsTotal) },
        { name: 'haproxy_backend_current_sessions', labels: proxy, value: Math.round(queue) + inBackend.reduce((sum, c) => sum + c.sessions, 0) },
        { name: 'haproxy_backend_current_queue', labels: proxy, value: Math.round(queue) },
        { name: 'haproxy_backend_response_time_average_seconds', labels: proxy, value: Number(responseAverage.toFixed(3)) },
        { name: 'haproxy_backend_active_servers', labels: proxy, value: inBackend.filter(inRotation).length },
      ];
      for (const c of inBackend) {
        const labels = { proxy: BACKEND, server: c.server };
        const state = c.admin === 'ready' ? 'UP' : c.admin === 'drain' ? 'DRAIN' : 'MAINT';
        samples.push({ name: 'haproxy_server_current_sessions', labels, value: c.sessions });
        samples.push({ name: 'haproxy_server_current_queue', labels, value: 0 });
        samples.push({ name: 'haproxy_server_status', labels: { ...labels, state }, value: 1 });
      }
      return ok({ samples, at: now() });
    },

    cpu(ids, windowSeconds, readyOnly) {
      const picked = containers.filter((c) => c.running && ids.includes(c.id) && (!readyOnly || inRotation(c)));
      if (picked.length === 0) return undefined;
      const means = picked.map((c) => {
        const recent = c.busy.slice(-Math.max(1, windowSeconds));
        return recent.length === 0 ? 0 : recent.reduce((a, b) => a + b, 0) / recent.length;
      });
      return (means.reduce((a, b) => a + b, 0) / means.length) * settings.cpuAtFullLoad;
    },

    replicas() {
      const running = containers.filter((c) => c.running);
      return {
        replicas: running.map((c) => ({ id: c.id, name: `sim-app-${c.number}`, number: c.number, createdAt: c.createdAt / 1000 })),
        serverOf: new Map(running.map((c) => [c.id, c.server])),
      };
    },

    startLike(count) {
      const stagger = (settings.startupStaggerSeconds ?? 0) * 1000;
      return Array.from({ length: count }, (_, i) => create(now() + settings.startupSeconds * 1000 + i * stagger).id);
    },

    stop(id) {
      const c = containers.find((x) => x.id === id);
      if (c !== undefined) c.running = false;
    },

    configuredServers() {
      return containers.filter((c) => c.running && c.inHaproxy).map((c) => ({ backend: BACKEND, name: c.server, address: '127.0.0.1', port: 80, weight: 100 }));
    },

    runtimeServers() {
      return containers
        .filter((c) => c.running && c.inHaproxy)
        .map((c) => ({ name: c.server, adminState: c.admin, operationalState: 'up' as const, checks: 'on' as const }));
    },

    setAdminState(server, state) {
      const c = containers.find((x) => x.server === server && x.running);
      if (c !== undefined) c.admin = state;
    },

    serverLoad(server) {
      const c = containers.find((x) => x.server === server && x.running && x.inHaproxy);
      return c === undefined ? undefined : { sessions: c.sessions, queue: 0 };
    },

    reconcile(removable) {
      for (const c of containers) if (c.inHaproxy && (!c.running || removable(c.id))) c.inHaproxy = false;
    },

    readyAt(id) {
      return containers.find((c) => c.id === id)?.readyAt;
    },
  };
}
