// Reads devenv/versions.env (the one place versions are pinned) and locates the cached
// Data Plane API binary that devenv/setup.sh builds.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const versionsFile = new URL('./versions.env', import.meta.url);

export interface PinnedVersions {
  readonly DATAPLANEAPI_MODULE: string;
  readonly DATAPLANEAPI_GO_VERSION: string;
  readonly DATAPLANEAPI_RELEASE: string;
  readonly DATAPLANEAPI_SPEC_MODULE: string;
  readonly DATAPLANEAPI_SPEC_VERSION: string;
  readonly BASE_IMAGE: string;
  readonly NGINX_IMAGE: string;
}

export function readPinnedVersions(): PinnedVersions {
  const values = new Map<string, string>();
  for (const line of readFileSync(versionsFile, 'utf8').split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) values.set(match[1], match[2]);
  }
  const get = (key: keyof PinnedVersions): string => values.get(key) ?? '';
  return {
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
 * The Data Plane API binary: HSC_DATAPLANEAPI_BIN, or the one setup.sh cached for the pinned
 * version; undefined when none is there (no version pinned, or setup.sh has not built it).
 */
export function dataplaneApiBinary(): string | undefined {
  const override = process.env.HSC_DATAPLANEAPI_BIN;
  if (override !== undefined && override !== '') return existsSync(override) ? override : undefined;
  const version = readPinnedVersions().DATAPLANEAPI_GO_VERSION;
  if (version === '') return undefined;
  const binary = join(cacheDirectory(), 'dataplaneapi', version, 'dataplaneapi');
  return existsSync(binary) ? binary : undefined;
}
