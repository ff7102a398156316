// Reads a local HAProxy's servers straight from its runtime socket, for assertions that must not
// go through the code under test.
import type { LocalHaproxy } from '../../devenv/localenv.js';
import type { DriverChoice } from '../../devenv/sidecar-env.js';
import { createDataplaneDriver } from '../../sidecar/dataplane/driver.js';
import { isOwnedServerName } from '../../sidecar/discovery/discovery.js';
import type { HaproxyDriver, HealthCheck } from '../../sidecar/driver/port.js';
import { createRuntimeDriver } from '../../sidecar/runtime/driver.js';
import { createRuntimeSocketOps } from '../../sidecar/runtime/ops.js';
import { dataplaneClientFor } from './dataplane.js';

/** The backend's server names in the running HAProxy, sorted. */
export async function runtimeServerNames(haproxy: LocalHaproxy, backend = haproxy.backend): Promise<string[]> {
  const answer = await haproxy.runtime(`show servers state ${backend}`);
  return answer
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && line.split(' ').length > 4)
    .map((line) => line.split(' ')[3] ?? '')
    .sort();
}

/** One server as `show servers state` shows it, read off the socket without the sidecar's parser. */
export interface RuntimeServerState {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  readonly operational: number;
  /** srv_admin_state flags: 0x01|0x02|0x04|0x20 maintenance, 0x08|0x10 drain. */
  readonly adminFlags: number;
  readonly admin: 'ready' | 'drain' | 'maint';
}

/** Every server of the backend with its operational and administrative state, by name. */
export async function runtimeServerStates(haproxy: LocalHaproxy, backend = haproxy.backend): Promise<RuntimeServerState[]> {
  return parseServerStates(await haproxy.runtime(`show servers state ${backend}`));
}

/**
 * `show servers state`'s answer read by its column names, without the sidecar's parser (the
 * tests and the soak check the sidecar against HAProxy, not against itself), sorted by name.
 */
export function parseServerStates(answer: string): RuntimeServerState[] {
  const lines = answer.split('\n').filter((line) => line.trim() !== '');
  const header = lines.find((line) => line.startsWith('# '))?.slice(2).trim().split(/\s+/) ?? [];
  const column = (name: string): number => {
    const index = header.indexOf(name);
    if (index === -1) throw new Error(`show servers state has no ${name} column: ${lines.slice(0, 2).join(' | ')}`);
    return index;
  };
  const [name, address, port, op, admin] = ['srv_name', 'srv_addr', 'srv_port', 'srv_op_state', 'srv_admin_state'].map(column) as [number, number, number, number, number];
  return lines
    .filter((line) => !line.startsWith('#') && line.trim().split(/\s+/).length >= header.length)
    .map((line) => {
      const fields = line.trim().split(/\s+/);
      const flags = Number(fields[admin]);
      return {
        name: fields[name] ?? '',
        address: fields[address] ?? '',
        port: Number(fields[port]),
        operational: Number(fields[op]),
        adminFlags: flags,
        admin: (flags & 0x27) !== 0 ? 'maint' : (flags & 0x18) !== 0 ? 'drain' : 'ready',
      } satisfies RuntimeServerState;
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A driver of either kind for a local instance, as the sidecar would build it (health checks every 500 ms). */
export function driverFor(haproxy: LocalHaproxy, kind: DriverChoice, check: HealthCheck = { intervalMs: 500, fall: 2, rise: 1 }): HaproxyDriver {
  return kind === 'runtime'
    ? createRuntimeDriver({ address: haproxy.runtimeSocket, timeoutMs: 5_000, configFile: haproxy.configFile, healthCheck: check, isOwned: isOwnedServerName })
    : createDataplaneDriver({
        client: dataplaneClientFor(haproxy),
        healthCheck: check,
        reloadTimeoutMs: 20_000,
        socket: createRuntimeSocketOps({ address: haproxy.runtimeSocket, timeoutMs: 5_000 }),
      });
}
