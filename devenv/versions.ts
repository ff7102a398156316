// Reads devenv/versions.env (the one place versions are pinned) and locates the binaries that
// devenv/setup.sh caches: HAProxy 3.0, 3.2 and 3.4, and the Data Plane API.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

const versionsFile = new URL('./versions.env', import.meta.url);

export interface PinnedVersions {
  readonly HAPROXY_SUITE: string;
  readonly HAPROXY_SERIES: string;
  readonly DATAPLANEAPI_MODULE: string;
  readonly DATAPLANEAPI_GO_VERSION: string;
  readonly DATAPLANEAPI_RELEASE: string;
  readonly DATAPLANEAPI_SPEC_MODULE: string;
  readonly DATAPLANEAPI_SPEC_VERSION: string;
  readonly BASE_IMAGE: string;
  readonly NGINX_IMAGE: string;
}

function readVersionsFile(): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of readFileSync(versionsFile, 'utf8').split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) values.set(match[1], match[2]);
  }
  return values;
}

export function readPinnedVersions(): PinnedVersions {
  const values = readVersionsFile();
  const get = (key: keyof PinnedVersions): string => values.get(key) ?? '';
  return {
    HAPROXY_SUITE: get('HAPROXY_SUITE'),
    HAPROXY_SERIES: get('HAPROXY_SERIES'),
    DATAPLANEAPI_MODULE: get('DATAPLANEAPI_MODULE'),
    DATAPLANEAPI_GO_VERSION: get('DATAPLANEAPI_GO_VERSION'),
    DATAPLANEAPI_RELEASE: get('DATAPLANEAPI_RELEASE'),
    DATAPLANEAPI_SPEC_MODULE: get('DATAPLANEAPI_SPEC_MODULE'),
    DATAPLANEAPI_SPEC_VERSION: get('DATAPLANEAPI_SPEC_VERSION'),
    BASE_IMAGE: get('BASE_IMAGE'),
    NGINX_IMAGE: get('NGINX_IMAGE'),
  };
}

export function cacheDirectory(): string {
  return process.env.HSC_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'haproxy-sidecar');
}

/**
 * The Data Plane API binary: HSC_DATAPLANEAPI_BIN, else a `dataplaneapi` on PATH, else the one
 * setup.sh cached for the pinned version; undefined when there is none.
 */
export function dataplaneApiBinary(): string | undefined {
  const override = process.env.HSC_DATAPLANEAPI_BIN;
  if (override !== undefined && override !== '') return existsSync(override) ? override : undefined;
  const onPath = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => join(dir, 'dataplaneapi'))
    .find((candidate) => existsSync(candidate));
  if (onPath !== undefined) return onPath;
  const version = readPinnedVersions().DATAPLANEAPI_GO_VERSION;
  if (version === '') return undefined;
  const binary = join(cacheDirectory(), 'dataplaneapi', version, 'dataplaneapi');
  return existsSync(binary) ? binary : undefined;
}

/** Debian 12's HAProxy 2.6, the floor: what runs when setup.sh has not cached 3.0. */
export const FLOOR_HAPROXY_BINARY = '/usr/sbin/haproxy';
/** The series FLOOR_HAPROXY_BINARY is. */
export const FLOOR_HAPROXY_SERIES = '2.6';

/** The HAProxy series HSC_HAPROXY_SERIES accepts: the floor and those versions.env names a Debian suite for. */
function haproxySeriesChoices(): readonly string[] {
  const bootstrapped = [...readVersionsFile().keys()]
    .map((key) => /^HAPROXY_(\d+)_(\d+)_SUITE$/.exec(key))
    .filter((match) => match !== null)
    .map((match) => `${match[1]}.${match[2]}`);
  return [FLOOR_HAPROXY_SERIES, ...bootstrapped];
}

/**
 * Where setup.sh caches a series' binary (haproxy/<suite>-<series>/haproxy), or the floor's
 * path for 2.6; throws for a series versions.env does not know. The file may not exist yet.
 */
export function haproxyBinaryOf(series: string): string {
  if (series === FLOOR_HAPROXY_SERIES) return FLOOR_HAPROXY_BINARY;
  const suite = readVersionsFile().get(`HAPROXY_${series.replace('.', '_')}_SUITE`);
  if (suite === undefined || !/^\d+\.\d+$/.test(series)) {
    throw new Error(`HAProxy series ${series} is not one the environment has: ${haproxySeriesChoices().join(', ')}`);
  }
  return join(cacheDirectory(), 'haproxy', `${suite}-${series}`, 'haproxy');
}

/**
 * The HAProxy binary the environment runs: HSC_HAPROXY_BIN when set (it must exist), else the
 * series HSC_HAPROXY_SERIES names (its binary must be cached: devenv/setup.sh does it), else the
 * default series setup.sh caches (3.0, Debian 13's package in a root of its own), else Debian
 * 12's 2.6.
 */
export function haproxyBinary(): string {
  const override = process.env.HSC_HAPROXY_BIN;
  if (override !== undefined && override !== '') {
    if (!existsSync(override)) throw new Error(`HSC_HAPROXY_BIN names ${override}, which does not exist`);
    return override;
  }
  const series = process.env.HSC_HAPROXY_SERIES;
  if (series !== undefined && series !== '') {
    const binary = haproxyBinaryOf(series);
    if (!existsSync(binary)) throw new Error(`HSC_HAPROXY_SERIES=${series}: ${binary} does not exist; run devenv/setup.sh with the same setting`);
    return binary;
  }
  const cached = haproxyBinaryOf(readPinnedVersions().HAPROXY_SERIES);
  return existsSync(cached) ? cached : FLOOR_HAPROXY_BINARY;
}

const versions = new Map<string, string>();

/** The version a HAProxy binary reports (`-v`), e.g. "3.0.11" or "3.3-dev5"; read once per binary. */
export function haproxyVersion(binary: string): string {
  const known = versions.get(binary);
  if (known !== undefined) return known;
  const output = execFileSync(binary, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  const version = /^HA-?Proxy version (\d+\.\d+(?:\.\d+)?(?:-dev\d*)?)/m.exec(output)?.[1];
  if (version === undefined) throw new Error(`${binary} -v did not report a HAProxy version: ${output.split('\n')[0] ?? ''}`);
  versions.set(binary, version);
  return version;
}
