// Pure parsers for what the runtime driver reads from HAProxy's stats socket: `show servers
// state` (the same format HAProxy writes to its server-state file) and `show info`. They turn
// HAProxy's text into the driver port's small types; nothing here does I/O.
import type { AdminState, ConfiguredServer, RuntimeServer } from '../driver/port.js';
import { fail, ok, type Result } from '../edge/result.js';

/**
 * One row of `show servers state`, reduced to what the sidecar uses. `weight` is the configured
 * (initial) weight, `runtimeWeight` the one it runs with now: `set weight` (a rollout's canary)
 * changes only the latter, and must not read as a configuration change to replace.
 */
export type ServerState = ConfiguredServer & Omit<RuntimeServer, 'name' | 'weight'> & { readonly runtimeWeight: number | undefined };

// srv_admin_state bits (HAProxy's enum srv_admin, the same in 2.6 and 3.0): FMAINT 0x01 forced,
// IMAINT 0x02 inherited from a tracked server, CMAINT 0x04 `disabled` in the configuration,
// RMAINT 0x20 address resolution failed; FDRAIN 0x08 forced, IDRAIN 0x10 inherited. 0x40 is
// not a maintenance bit (2.6 names it HMAINT, 3.0 FQDN_CHANGED: the FQDN was set at run time).
const MAINT_FLAGS = 0x01 | 0x02 | 0x04 | 0x20;
const DRAIN_FLAGS = 0x08 | 0x10;

/** Maintenance wins over drain: a server in both takes no traffic at all. */
export function adminStateFromFlags(flags: number): AdminState {
  if ((flags & MAINT_FLAGS) !== 0) return 'maint';
  if ((flags & DRAIN_FLAGS) !== 0) return 'drain';
  return 'ready';
}

// srv_check_state bits (HAProxy's CHK_ST_*, the same in 2.6 and 3.0): 0x02 configured (`check`
// on the server line), 0x04 enabled; `enable health` sets the second, and a server added at run
// time with `check` starts without it (measured: 2 after `add server`, 6 after `enable health`).
const CHECK_CONFIGURED = 0x02;
const CHECK_ENABLED = 0x04;

/** Whether the server's health checks run: off when configured but not enabled, none when not configured. */
export function checksFromFlags(flags: number): RuntimeServer['checks'] {
  if ((flags & CHECK_CONFIGURED) === 0) return 'none';
  return (flags & CHECK_ENABLED) === 0 ? 'off' : 'on';
}

/**
 * srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. A starting server (slowstart)
 * already takes a share of the traffic, so it counts as up.
 */
export function operationalStateFromCode(code: number): RuntimeServer['operationalState'] {
  switch (code) {
    case 0:
      return 'down';
    case 1:
    case 2:
      return 'up';
    case 3:
      return 'stopping';
    default:
      return undefined;
  }
}

const COLUMNS = ['be_name', 'srv_name', 'srv_addr', 'srv_op_state', 'srv_admin_state', 'srv_uweight', 'srv_iweight', 'srv_check_state', 'srv_fqdn', 'srv_port'] as const;

const integer = (text: string | undefined): number | undefined =>
  text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;

/**
 * Parses `show servers state [<backend>]`: a format version line ("1"), a `# ` header naming
 * the columns, then one space-separated row per server. Columns are found by their header
 * names, so columns a later HAProxy appends do not break the parse.
 */
export function parseServersState(text: string, operation = 'show servers state'): Result<readonly ServerState[]> {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const [version, header, ...rows] = lines;
  if (version?.trim() !== '1') return fail(operation, 'malformed', `expected format version 1, got ${JSON.stringify(version ?? '')}`);
  if (header === undefined || !header.startsWith('# ')) return fail(operation, 'malformed', 'no column header');
  const names = header.slice(2).trim().split(/\s+/);
  const index = new Map(COLUMNS.map((column) => [column, names.indexOf(column)]));
  const missing = COLUMNS.filter((column) => index.get(column) === -1);
  if (missing.length > 0) return fail(operation, 'malformed', `header lacks ${missing.join(', ')}`);
  const column = (fields: readonly string[], name: (typeof COLUMNS)[number]): string | undefined => fields[index.get(name) ?? -1];

  const servers: ServerState[] = [];
  for (const row of rows) {
    const fields = row.trim().split(/\s+/);
    if (fields.length < names.length) return fail(operation, 'malformed', `short row: ${row}`);
    const backend = column(fields, 'be_name') ?? '';
    const name = column(fields, 'srv_name') ?? '';
    const opState = integer(column(fields, 'srv_op_state'));
    const adminFlags = integer(column(fields, 'srv_admin_state'));
    const checkFlags = integer(column(fields, 'srv_check_state'));
    const fqdn = column(fields, 'srv_fqdn');
    const port = integer(column(fields, 'srv_port'));
    servers.push({
      backend,
      name,
      // A server configured by host name shows its resolved address in srv_addr; the name is
      // what its configuration says.
      address: fqdn !== undefined && fqdn !== '-' ? fqdn : (column(fields, 'srv_addr') ?? ''),
      // 0 is HAProxy's "no port in the configuration" (the client's port is used).
      port: port === 0 ? undefined : port,
      weight: integer(column(fields, 'srv_iweight')),
      runtimeWeight: integer(column(fields, 'srv_uweight')),
      adminState: adminFlags === undefined ? undefined : adminStateFromFlags(adminFlags),
      operationalState: opState === undefined ? undefined : operationalStateFromCode(opState),
      checks: checkFlags === undefined ? undefined : checksFromFlags(checkFlags),
    });
  }
  return ok(servers);
}

export const toConfiguredServer = (server: ServerState): ConfiguredServer => ({
  backend: server.backend,
  name: server.name,
  address: server.address,
  port: server.port,
  weight: server.weight,
});

export const toRuntimeServer = (server: ServerState): RuntimeServer => ({
  name: server.name,
  adminState: server.adminState,
  operationalState: server.operationalState,
  checks: server.checks,
  weight: server.runtimeWeight,
});

/** The `Version:` line of `show info`, e.g. "3.0.11-1+deb13u4"; undefined when absent. */
export function parseInfoVersion(text: string): string | undefined {
  const value = /^Version:\s*(\S+)\s*$/m.exec(text)?.[1];
  return value === undefined || value === '' ? undefined : value;
}

/** Major and minor of a HAProxy version string ("2.6.12-1+deb12u4" → [2, 6]). */
export function versionSeries(version: string): readonly [number, number] | undefined {
  const match = /^(\d+)\.(\d+)/.exec(version);
  return match === null ? undefined : [Number(match[1]), Number(match[2])];
}

/** True when the version is at least major.minor; false when it cannot be read. */
export function versionAtLeast(version: string | undefined, major: number, minor: number): boolean {
  const series = version === undefined ? undefined : versionSeries(version);
  if (series === undefined) return false;
  return series[0] > major || (series[0] === major && series[1] >= minor);
}
