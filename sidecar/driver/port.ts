// The HAProxy driver port: everything the reconciler, the drainer and the admin API need from
// HAProxy, whatever writes to it. Two adapters implement it:
//   - dataplane (sidecar/dataplane/driver.ts): the Data Plane API, transactions and its runtime endpoints;
//   - runtime (sidecar/runtime/driver.ts): HAProxy's runtime API over the stats socket, plus the
//     managed region of the configuration file so that nothing is lost across reloads.
// Nothing above this port knows which one runs.
import type { Result } from '../edge/result.js';

export type AdminState = 'ready' | 'drain' | 'maint';

/**
 * The one order of HAProxy names (backends, servers) wherever the sidecar sorts them: by UTF-16
 * code units, the same on every machine. Not localeCompare, whose order follows the process's
 * locale and whose first call loads ICU's collation data (measured: about 2 MiB of RSS).
 */
export const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export type DriverKind = 'dataplane' | 'runtime';

/** A server the sidecar wants, derived from a ready container. */
export interface DesiredServer {
  readonly backend: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  /** The admin state it must have: drain/maint where a record (a drain, a scale-down) says so; absent: ready. */
  readonly adminState?: AdminState;
  /** The container it stands for, for logs. */
  readonly containerId: string;
}

export type Operation =
  | { readonly op: 'add'; readonly server: DesiredServer; readonly reason: 'container ready' }
  | {
      readonly op: 'replace';
      readonly server: DesiredServer;
      readonly reason: 'address changed' | 'weight changed';
    }
  | { readonly op: 'remove'; readonly backend: string; readonly name: string; readonly reason: 'no ready container' };

/** A server as HAProxy holds it (its configuration, or its running state where that is the truth). */
export interface ConfiguredServer {
  readonly backend: string;
  readonly name: string;
  readonly address: string;
  readonly port: number | undefined;
  readonly weight: number | undefined;
}

/** A server as the running HAProxy sees it. */
export interface RuntimeServer {
  readonly name: string;
  readonly adminState: AdminState | undefined;
  readonly operationalState: 'up' | 'down' | 'stopping' | undefined;
  /**
   * Whether its health checks run: `off` is a server with `check` whose checks were never turned
   * on (a runtime-added server before `enable health`); `none` one without `check`; undefined
   * where the driver cannot read it (the Data Plane API without the runtime socket).
   */
  readonly checks?: 'on' | 'off' | 'none' | undefined;
  /** Its weight in the running HAProxy (a canary's is set lower at run time); undefined where unread. */
  readonly weight?: number | undefined;
}

/** Health checks every server the sidecar adds gets. */
export interface HealthCheck {
  readonly intervalMs: number;
  readonly fall: number;
  readonly rise: number;
}

/**
 * The servers of the managed backends, read at one point in time. `revision` lets a driver
 * refuse to apply a plan made from it once something else wrote in between (the Data Plane
 * API's configuration version); undefined where the driver has no such counter.
 */
export interface ServerSnapshot {
  readonly revision: number | undefined;
  /** The backends read, servers or not. */
  readonly backends: readonly string[];
  readonly servers: readonly ConfiguredServer[];
}

export interface ApplyOutcome {
  /** HAProxy reloads the writes caused (0 when everything went through the runtime API). */
  readonly reloads: number;
  /** Data Plane API transactions committed. */
  readonly transactions: number;
  /** Changes applied to the running HAProxy without a reload. */
  readonly runtimeChanges: number;
}

/** What the driver found at start-up: whom it talks to and what does not work there. */
export interface DriverReport {
  readonly driver: DriverKind;
  /** HAProxy's version as it reports it, e.g. "3.0.11"; undefined when it cannot be read. */
  readonly haproxyVersion: string | undefined;
  /**
   * Features that cannot work with this HAProxy through this driver, each one sentence for the
   * start-up log; empty when everything works.
   */
  readonly limitations: readonly string[];
  /** False when runtime states (drain, maint) cannot be read back: drains are not resumed. */
  readonly runtimeReads: boolean;
}

export interface HaproxyDriver {
  readonly kind: DriverKind;
  /** Connects, reads HAProxy's version, and finds what this HAProxy cannot do through this driver. */
  inspect(backends: readonly string[]): Promise<Result<DriverReport>>;
  /** The servers of these backends now, with the revision they were read at. */
  readServers(backends: readonly string[]): Promise<Result<ServerSnapshot>>;
  /**
   * Applies a plan made from `snapshot`, all of it or (as far as HAProxy allows) none of it. A
   * `conflict` or `exists` error means something else wrote meanwhile: re-read and re-plan.
   * An empty plan changes nothing in the running HAProxy; a driver that keeps its own copy of
   * the servers (the runtime driver's file) repairs that copy if it drifted.
   */
  apply(operations: readonly Operation[], snapshot: ServerSnapshot): Promise<Result<ApplyOutcome>>;
  /** The backend's servers in the running HAProxy, with their admin and operational states. */
  listRuntimeServers(backend: string): Promise<Result<readonly RuntimeServer[]>>;
  /** Sets a server's admin state in the running HAProxy (drain, maint, ready); never reloads. */
  setAdminState(backend: string, server: string, state: AdminState): Promise<Result<void>>;
  /** Turns on the health checks of a server configured with them (`enable health`); never reloads. */
  enableChecks(backend: string, server: string): Promise<Result<void>>;
  /**
   * Sets a server's weight in the running HAProxy only (a rollout's canary); never reloads, and a
   * reload gives it back its configured weight.
   */
  setRuntimeWeight(backend: string, server: string, weight: number): Promise<Result<void>>;
}

/**
 * What the Data Plane API adapter borrows from HAProxy's runtime socket where the API falls short
 * (turning on checks at run time, dynamic cookies before 3.0, server states on 2.6).
 */
export interface RuntimeSocketOps {
  enableHealth(backend: string, server: string): Promise<Result<void>>;
  /** Recomputes the backend's dynamic cookies: HAProxy < 3.0 gives a server added at run time none. */
  enableDynamicCookies(backend: string): Promise<Result<void>>;
  listRuntimeServers(backend: string): Promise<Result<readonly RuntimeServer[]>>;
  setAdminState(backend: string, server: string, state: AdminState): Promise<Result<void>>;
  setRuntimeWeight(backend: string, server: string, weight: number): Promise<Result<void>>;
}
