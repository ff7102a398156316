import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../sidecar/config/index.js';

const env = { HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy/admin.sock', HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg', HSC_DOCKER_NETWORK: 'app' };

describe('docker.mode', () => {
  const cases: Array<{ name: string; env: Record<string, string>; mode?: string; error?: RegExp }> = [
    { name: 'compose by default', env: {}, mode: 'compose' },
    { name: 'swarm from HSC_DOCKER_MODE', env: { HSC_DOCKER_MODE: 'swarm' }, mode: 'swarm' },
    { name: 'a value it does not know stops start-up, naming the key', env: { HSC_DOCKER_MODE: 'kubernetes' }, error: /docker\.mode.*HSC_DOCKER_MODE.*compose, swarm/ },
    { name: 'swarm needs the overlay network address mode', env: { HSC_DOCKER_MODE: 'swarm', HSC_DOCKER_ADDRESS_MODE: 'published' }, error: /docker\.addressMode.*network when docker\.mode is swarm/ },
  ];
  it.each(cases)('$name', ({ env: extra, mode, error }) => {
    const load = () => loadConfig({ env: { ...env, ...extra } });
    if (error !== undefined) {
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(error);
    } else {
      expect(load().docker.mode).toBe(mode);
    }
  });
  it('is read from the configuration file too', () => {
    expect(loadConfig({ env, fileText: 'docker:\n  mode: swarm\n' }).docker.mode).toBe('swarm');
  });
});
