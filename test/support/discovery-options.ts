// The discovery settings most tests use: published ports, two managed backends, the defaults.
import type { DiscoveryOptions } from '../../sidecar/discovery/parse.js';

export const PUBLISHED_DISCOVERY: DiscoveryOptions = {
  labelPrefix: 'haproxy',
  composeService: 'nginx',
  composeProject: '',
  addressMode: 'published',
  network: '',
  managedBackends: ['be_app', 'be_api'],
  defaultBackend: 'be_app',
  defaultPort: 80,
  defaultWeight: 100,
  defaultHealthPath: '/healthz',
};
