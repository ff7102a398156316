// The runtime driver's share of HAProxy's configuration file: one managed region per backend,
//
//     # hsc:managed-servers begin <backend>
//     # Written by haproxy-scaling-sidecar's runtime driver; ...
//     server ...
//     # hsc:managed-servers end <backend>
//
// which holds the servers the sidecar added at run time, so that a reload or a restart keeps
// them. Rendering and replacing are pure; writing is atomic (a reader, HAProxy or `haproxy -c`,
// sees the old file or the new one, never half of one) and skipped when nothing changes.
import { randomBytes } from 'node:crypto';
import { chown, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ConfiguredServer, HealthCheck } from '../driver/port.js';
import { errorMessage, fail, ok, type EdgeErrorKind, type Result } from '../edge/result.js';

/** A server as the region writes it: the port's server without its backend (the region says it). */
export type RegionServer = Omit<ConfiguredServer, 'backend'>;

export const beginMarker = (backend: string): string => `# hsc:managed-servers begin ${backend}`;
export const endMarker = (backend: string): string => `# hsc:managed-servers end ${backend}`;

const REGION_COMMENT = "# Written by haproxy-scaling-sidecar's runtime driver; what is between these two lines is replaced.";
const INDENT = '    ';

/** `addr:port`, with an IPv6 address in brackets (HAProxy would read `::1:80` too, people less). */
function hostPort(address: string, port: number | undefined): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return port === undefined ? host : `${host}:${port}`;
}

/**
 * What follows `server <name>` in the file and `add server <backend>/<name>` at run time: the
 * same text in both, so a reload gives the server HAProxy already runs. No `cookie`: the
 * managed backends use dynamic cookies (derived from address, port and the backend's key),
 * which HAProxy 2.6 requires for servers added at run time.
 *
 * `idlePool: false` adds `pool-max-conn 0`. HAProxy 2.6 gives a server added at run time no
 * pool of idle server connections, but one from the file gets one, purged slowly (seen: 22 s
 * after the load stopped, never under load), and `del server` refuses while it holds any: so
 * on 2.6 the file's servers go without, like the ones added at run time. 3.0 purges the pool
 * when the server enters maintenance.
 */
export function serverArguments(server: RegionServer, check: HealthCheck, idlePool = true): string {
  const weight = server.weight === undefined ? '' : ` weight ${server.weight}`;
  const pool = idlePool ? '' : ' pool-max-conn 0';
  return `${hostPort(server.address, server.port)} check inter ${check.intervalMs} fall ${check.fall} rise ${check.rise}${weight}${pool}`;
}

/** The region's lines between the markers: the comment, then the servers sorted by name. */
export function renderRegion(servers: readonly RegionServer[], check: HealthCheck, idlePool = true): string[] {
  const sorted = [...servers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [`${INDENT}${REGION_COMMENT}`, ...sorted.map((s) => `${INDENT}server ${s.name} ${serverArguments(s, check, idlePool)}`)];
}

// Section keywords of haproxy.cfg: a marker pair must sit in its backend's section, or the
// servers would land in whichever section precedes it.
const SECTION = /^\s*(global|defaults|frontend|backend|listen|userlist|peers|resolvers|mailers|program|http-errors|ring|cache|log-forward|crt-store|traces)(\s|$)/;

function missingRegion(file: string, backend: string, problem: string): Result<never> {
  return fail(
    `write managed servers to ${file}`,
    'invalid',
    `${file}: ${problem}; add these two lines inside "backend ${backend}", after its other settings:\n` +
      `${INDENT}${beginMarker(backend)}\n${INDENT}${endMarker(backend)}`,
  );
}

/**
 * Replaces everything between the backend's two marker lines with `lines`, keeping the
 * markers and every other line of the file as they are. Fails when the markers are missing,
 * doubled, out of order, or outside the backend's own section.
 */
export function replaceRegion(text: string, file: string, backend: string, lines: readonly string[]): Result<string> {
  const fileLines = text.split('\n');
  const find = (marker: string): number[] =>
    fileLines.flatMap((line, index) => (line.trim() === marker ? [index] : []));
  const begins = find(beginMarker(backend));
  const ends = find(endMarker(backend));
  if (begins.length === 0 || ends.length === 0) return missingRegion(file, backend, `no managed-servers region for backend ${backend}`);
  if (begins.length > 1 || ends.length > 1) return missingRegion(file, backend, `the managed-servers markers of backend ${backend} appear more than once`);
  const begin = begins[0] ?? 0;
  const end = ends[0] ?? 0;
  if (end < begin) return missingRegion(file, backend, `the end marker of backend ${backend} comes before its begin marker`);

  const sectionBefore = fileLines.slice(0, begin).filter((line) => SECTION.test(line)).at(-1)?.trim().split(/\s+/);
  const inBackend = (sectionBefore?.[0] === 'backend' || sectionBefore?.[0] === 'listen') && sectionBefore[1] === backend;
  const sectionInside = fileLines.slice(begin + 1, end).some((line) => SECTION.test(line));
  if (!inBackend || sectionInside) {
    return missingRegion(file, backend, `the managed-servers region of backend ${backend} is not inside that backend's section`);
  }
  return ok([...fileLines.slice(0, begin + 1), ...lines, ...fileLines.slice(end)].join('\n'));
}

function fileErrorKind(error: unknown): EdgeErrorKind {
  const code = error !== null && typeof error === 'object' && 'code' in error ? error.code : undefined;
  if (code === 'ENOENT') return 'not-found';
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return 'unauthorized';
  return 'unavailable';
}

/** Reads the file, or an EdgeError naming it. */
export async function readConfigFile(file: string): Promise<Result<string>> {
  try {
    return ok(await readFile(file, 'utf8'));
  } catch (error) {
    return fail(`read ${file}`, fileErrorKind(error), errorMessage(error));
  }
}

/**
 * Replaces the file with `content` atomically: a temporary file in the same directory (so the
 * rename cannot cross file systems), with the original's mode and owner, flushed to disk, then
 * renamed over the original, and the directory flushed so the rename itself survives a crash.
 */
export async function writeFileAtomic(file: string, content: string): Promise<Result<void>> {
  const temporary = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const original = await stat(file);
    const handle = await open(temporary, 'wx', original.mode & 0o7777);
    try {
      await handle.writeFile(content, 'utf8');
      // The umask may have narrowed the mode open() was given.
      await handle.chmod(original.mode & 0o7777);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (typeof process.getuid === 'function' && process.getuid() === 0) await chown(temporary, original.uid, original.gid);
    await rename(temporary, file);
    const directory = await open(dirname(file), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
    return ok(undefined);
  } catch (error) {
    await rm(temporary, { force: true });
    return fail(`write ${file}`, fileErrorKind(error), errorMessage(error));
  }
}

/**
 * Sets the managed region of each backend in `regions` to its servers, in one write. Returns
 * whether the file changed; an unchanged file is not written at all.
 */
export async function writeManagedRegions(
  file: string,
  regions: ReadonlyMap<string, readonly RegionServer[]>,
  check: HealthCheck,
  idlePool = true,
): Promise<Result<boolean>> {
  const read = await readConfigFile(file);
  if (!read.ok) return read;
  let text = read.value;
  for (const [backend, servers] of [...regions].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const replaced = replaceRegion(text, file, backend, renderRegion(servers, check, idlePool));
    if (!replaced.ok) return replaced;
    text = replaced.value;
  }
  if (text === read.value) return ok(false);
  const written = await writeFileAtomic(file, text);
  return written.ok ? ok(true) : written;
}
