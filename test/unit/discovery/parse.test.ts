import { describe, expect, it } from 'vitest';
import {
  assignServerNames,
  parseContainer,
  type Candidate,
  type ContainerSnapshot,
  type DiscoveryOptions,
  type ParseOutcome,
} from '../../../sidecar/discovery/parse.js';
import { healthFromStatus, toSnapshot } from '../../../sidecar/docker/compose.js';
import { PUBLISHED_DISCOVERY } from '../../support/discovery-options.js';

const published = PUBLISHED_DISCOVERY;
const onNetwork: DiscoveryOptions = { ...published, addressMode: 'network', network: 'stack_app' };

const container = (labels: Record<string, string>, extra: Partial<ContainerSnapshot> = {}): ContainerSnapshot => ({
  id: 'abcdef0123456789'.padEnd(64, '0'),
  name: 'web',
  labels,
  running: true,
  createdAt: 1_700_000_000,
  health: 'healthy',
  networks: { stack_app: '172.20.0.5', bridge: '172.17.0.3' },
  publishedPorts: [
    { containerPort: 80, hostIp: '0.0.0.0', hostPort: 32768 },
    { containerPort: 8080, hostIp: '127.0.0.1', hostPort: 32769 },
  ],
  ...extra,
});

const candidate = (extra: Partial<Candidate>): ParseOutcome => ({
  kind: 'candidate',
  candidate: {
    containerId: 'abcdef0123456789'.padEnd(64, '0'),
    containerName: 'web',
    backend: 'be_app',
    serverName: 'hsc-web',
    address: '127.0.0.1',
    port: 32768,
    weight: 100,
    healthPath: '/healthz',
    health: 'healthy',
    ...extra,
  },
});
const skipped = (label: string, reason: string): ParseOutcome => ({ kind: 'skipped', containerName: 'web', label, reason });
const compose = { 'com.docker.compose.service': 'nginx', 'com.docker.compose.container-number': '3' };

const cases: Array<{ name: string; input: ContainerSnapshot; options?: DiscoveryOptions; expected: ParseOutcome }> = [
  { name: 'no labels: not ours', input: container({}), expected: { kind: 'ignored' } },
  { name: 'opt-in label with defaults, wildcard binding reached on the loopback', input: container({ 'haproxy.enable': 'true' }), expected: candidate({}) },
  {
    name: 'the Compose service is selected without labels and named after service and number',
    input: container(compose),
    expected: candidate({ serverName: 'hsc-nginx-3' }),
  },
  { name: 'the Compose service can opt out', input: container({ ...compose, 'haproxy.enable': 'false' }), expected: { kind: 'ignored' } },
  { name: 'another Compose service is not selected', input: container({ 'com.docker.compose.service': 'db' }), expected: { kind: 'ignored' } },
  { name: 'a stopped container is not a candidate', input: container(compose, { running: false }), expected: { kind: 'ignored' } },
  {
    name: 'backend, port, weight and check path from labels; a specific host IP is kept',
    input: container({ 'haproxy.enable': 'true', 'haproxy.backend': 'be_api', 'haproxy.port': '8080', 'haproxy.weight': '50', 'haproxy.check.path': '/ready' }),
    expected: candidate({ backend: 'be_api', port: 32769, weight: 50, healthPath: '/ready' }),
  },
  {
    name: 'network mode: the IP on the configured network and the container port',
    input: container(compose),
    options: onNetwork,
    expected: candidate({ serverName: 'hsc-nginx-3', address: '172.20.0.5', port: 80 }),
  },
  { name: 'enable must be a boolean', input: container({ 'haproxy.enable': 'yes' }), expected: skipped('haproxy.enable', 'must be "true" or "false", not "yes"') },
  {
    name: 'unknown backend',
    input: container({ 'haproxy.enable': 'true', 'haproxy.backend': 'be_nope' }),
    expected: skipped('haproxy.backend', '"be_nope" is not a managed backend (be_app, be_api)'),
  },
  {
    name: 'port not a number',
    input: container({ 'haproxy.enable': 'true', 'haproxy.port': '80a' }),
    expected: skipped('haproxy.port', 'must be a port number 1-65535, not "80a"'),
  },
  { name: 'port out of range', input: container({ 'haproxy.enable': 'true', 'haproxy.port': '70000' }), expected: skipped('haproxy.port', 'must be a port number 1-65535, not "70000"') },
  { name: 'weight out of range', input: container({ 'haproxy.enable': 'true', 'haproxy.weight': '300' }), expected: skipped('haproxy.weight', 'must be an integer 0-256, not "300"') },
  {
    name: 'check path must be a path',
    input: container({ 'haproxy.enable': 'true', 'haproxy.check.path': 'healthz now' }),
    expected: skipped('haproxy.check.path', 'must be an absolute path without spaces, not "healthz now"'),
  },
  {
    name: 'published mode: the port must be published',
    input: container({ 'haproxy.enable': 'true', 'haproxy.port': '9000' }),
    expected: skipped('haproxy.port', 'container port 9000 is not published on the host'),
  },
  {
    name: 'network mode: the container must be on the network',
    input: container({ 'haproxy.enable': 'true' }, { networks: { bridge: '172.17.0.3' } }),
    options: onNetwork,
    expected: skipped('', 'is not attached to the network stack_app'),
  },
  {
    name: 'characters HAProxy refuses in a server name are replaced',
    input: container({ 'haproxy.enable': 'true' }, { name: 'my web/app+1' }),
    expected: { kind: 'candidate', candidate: { ...(candidate({}) as { candidate: Candidate }).candidate, containerName: 'my web/app+1', serverName: 'hsc-my-web-app-1' } },
  },
];

describe('parseContainer', () => {
  it.each(cases)('$name', ({ input, options, expected }) => {
    expect(parseContainer(input, options ?? published)).toEqual(expected);
  });
});

describe('assignServerNames', () => {
  const c = (id: string, serverName: string, backend = 'be_app'): Candidate =>
    (candidate({ containerId: id.padEnd(64, '0'), serverName, backend }) as { candidate: Candidate }).candidate;

  it('keeps unique names and disambiguates clashes by container ID, whatever the order', () => {
    const input = [c('aaaaaaaaaaaa', 'hsc-nginx-1'), c('bbbbbbbbbbbb', 'hsc-nginx-1'), c('cccccccccccc', 'hsc-nginx-2'), c('dddddddddddd', 'hsc-nginx-1', 'be_api')];
    const named = assignServerNames(input).map((x) => `${x.backend}/${x.serverName}`);
    expect(named).toEqual(['be_app/hsc-nginx-1-aaaaaaaaaaaa', 'be_app/hsc-nginx-1-bbbbbbbbbbbb', 'be_app/hsc-nginx-2', 'be_api/hsc-nginx-1']);
    expect(assignServerNames([...input].reverse()).map((x) => `${x.backend}/${x.serverName}`).sort()).toEqual([...named].sort());
  });
});

describe('the Docker edge', () => {
  it('reads health from the status text', () => {
    expect(['Up 3 minutes (healthy)', 'Up 1 second (health: starting)', 'Up 2 hours (unhealthy)', 'Up 5 seconds'].map(healthFromStatus)).toEqual([
      'healthy',
      'starting',
      'unhealthy',
      'none',
    ]);
  });

  it('converts a container list entry, IPv4 bindings first, unpublished ports dropped', () => {
    const snapshot = toSnapshot({
      Id: 'f'.repeat(64),
      Names: ['/stack-nginx-1'],
      Image: 'hsc/nginx:local',
      ImageID: 'sha256:0',
      Command: 'nginx',
      Created: 1,
      State: 'running',
      Status: 'Up 4 seconds (healthy)',
      Labels: { 'com.docker.compose.service': 'nginx' },
      Ports: [
        { IP: '::', PrivatePort: 80, PublicPort: 32768, Type: 'tcp' },
        { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 32768, Type: 'tcp' },
        { IP: '', PrivatePort: 443, PublicPort: 0, Type: 'tcp' },
        { IP: '0.0.0.0', PrivatePort: 53, PublicPort: 5353, Type: 'udp' },
      ],
      HostConfig: { NetworkMode: 'stack_app' },
      NetworkSettings: { Networks: { stack_app: { IPAddress: '172.20.0.5' } as never, none: { IPAddress: '' } as never } },
      Mounts: [],
    });
    expect(snapshot).toEqual({
      id: 'f'.repeat(64),
      name: 'stack-nginx-1',
      labels: { 'com.docker.compose.service': 'nginx' },
      running: true,
      health: 'healthy',
      networks: { stack_app: '172.20.0.5' },
      publishedPorts: [
        { containerPort: 80, hostIp: '0.0.0.0', hostPort: 32768 },
        { containerPort: 80, hostIp: '::', hostPort: 32768 },
      ],
      createdAt: 1,
    });
  });
});

describe('the Compose service rule', () => {
  it('takes the service in its project only, when a project is set', () => {
    const labels = (project: string) => ({ 'com.docker.compose.project': project, 'com.docker.compose.service': 'nginx', 'com.docker.compose.container-number': '1' });
    const scoped = { ...PUBLISHED_DISCOVERY, composeProject: 'shop' };
    const mine = { ...container(labels('shop')), publishedPorts: [{ containerPort: 80, hostIp: '127.0.0.1', hostPort: 32001 }] };
    const theirs = { ...container(labels('other')), publishedPorts: [{ containerPort: 80, hostIp: '127.0.0.1', hostPort: 32002 }] };
    expect(parseContainer(mine, scoped).kind).toBe('candidate');
    expect(parseContainer(theirs, scoped).kind).toBe('ignored');
    expect(parseContainer(theirs, PUBLISHED_DISCOVERY).kind).toBe('candidate');
  });
});
