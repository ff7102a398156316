// The HSC_* settings that point a sidecar at a local HAProxy instance, for either driver. Tests,
// the demo and the benchmarks all start sidecars this way, so the two drivers are configured in
// one place.
import type { LocalHaproxy } from './localenv.js';
import { dataplaneApiBinary } from './versions.js';

export type DriverChoice = 'dataplane' | 'runtime';

/** The drivers this machine can run: the runtime one always, the Data Plane API where its binary is. */
export function availableDrivers(): readonly DriverChoice[] {
  return dataplaneApiBinary() === undefined ? ['runtime'] : ['dataplane', 'runtime'];
}

export function haproxyEnv(haproxy: LocalHaproxy, driver: DriverChoice): Record<string, string> {
  const common = {
    HSC_HAPROXY_DRIVER: driver,
    HSC_HAPROXY_METRICS_URL: haproxy.metricsUrl,
    // Both drivers use the runtime socket: the runtime driver for everything, the Data Plane API
    // driver to turn on the health checks of servers it adds without a reload.
    HSC_HAPROXY_RUNTIME_SOCKET: haproxy.runtimeSocket,
  };
  if (driver === 'runtime') return { ...common, HSC_HAPROXY_CONFIG_FILE: haproxy.configFile };
  if (haproxy.dataplaneUrl === undefined) throw new Error('the dataplane driver needs an instance started with the Data Plane API');
  return {
    ...common,
    HSC_DATAPLANE_URL: haproxy.dataplaneUrl,
    HSC_DATAPLANE_USERNAME: haproxy.dataplaneUser,
    HSC_DATAPLANE_PASSWORD: haproxy.dataplanePassword,
  };
}

/**
 * A sidecar that manages only the containers labelled `<prefix>.enable=true`, on their published
 * ports, in the instance's backend: the Compose-service rule names a service that does not exist,
 * so a test's sidecar never takes another run's containers on the same host.
 */
export function labelledContainersEnv(haproxy: LocalHaproxy, driver: DriverChoice, prefix: string): Record<string, string> {
  return {
    ...haproxyEnv(haproxy, driver),
    HSC_DOCKER_ADDRESS_MODE: 'published',
    HSC_DOCKER_LABEL_PREFIX: prefix,
    HSC_DOCKER_COMPOSE_SERVICE: `none-${prefix}`,
    HSC_DEFAULT_BACKEND: haproxy.backend,
  };
}
