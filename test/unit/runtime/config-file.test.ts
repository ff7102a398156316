// The managed-servers regions of HAProxy's configuration file: rendering, replacing between the
// markers without touching a byte around them, refusing files without (or with misplaced)
// markers, and the atomic write that skips unchanged content.
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  renderRegion,
  replaceRegion,
  serverArguments,
  writeFileAtomic,
  writeManagedRegions,
} from '../../../sidecar/runtime/config-file.js';

const check = { intervalMs: 1000, fall: 2, rise: 1 };

// Shaped like haproxy/haproxy.local.cfg.tmpl, with a second managed backend and a hand-written server.
const config = `global
    stats socket /run/haproxy.sock mode 600 level admin expose-fd listeners

backend be_app
    balance roundrobin
    cookie SRVID insert indirect nocache httponly dynamic
    dynamic-cookie-key k3y
    server manual-1 127.0.0.1:8080 check inter 1s fall 2 rise 1
    # hsc:managed-servers begin be_app
    # Written by haproxy-scaling-sidecar's runtime driver; what is between these two lines is replaced.
    # hsc:managed-servers end be_app

backend be_api
    balance leastconn
    # hsc:managed-servers begin be_api
    # hsc:managed-servers end be_api

frontend fe_stats
    bind 127.0.0.1:8404
`;

describe('rendering', () => {
  it('writes the same arguments the runtime `add server` gets, IPv6 in brackets', () => {
    expect(serverArguments({ name: 'hsc-a', address: '10.0.0.5', port: 80, weight: 100 }, check)).toBe(
      '10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100',
    );
    expect(serverArguments({ name: 'hsc-b', address: 'fd00::5', port: 8080, weight: 7 }, { intervalMs: 500, fall: 3, rise: 2 })).toBe(
      '[fd00::5]:8080 check inter 500 fall 3 rise 2 weight 7',
    );
  });

  it('goes without an idle connection pool where HAProxy 2.6 needs that for del server', () => {
    expect(serverArguments({ name: 'hsc-a', address: '10.0.0.5', port: 80, weight: 100 }, check, false)).toBe(
      '10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100 pool-max-conn 0',
    );
    expect(renderRegion([{ name: 'hsc-a', address: '10.0.0.5', port: 80, weight: undefined }], check, false)[1]).toBe(
      '    server hsc-a 10.0.0.5:80 check inter 1000 fall 2 rise 1 pool-max-conn 0',
    );
  });

  it('lists the servers sorted by name after the region comment', () => {
    expect(
      renderRegion(
        [
          { name: 'hsc-web-10', address: '10.0.0.10', port: 80, weight: 100 },
          { name: 'hsc-web-2', address: '10.0.0.2', port: 80, weight: 50 },
        ],
        check,
      ),
    ).toEqual([
      "    # Written by haproxy-scaling-sidecar's runtime driver; what is between these two lines is replaced.",
      '    server hsc-web-10 10.0.0.10:80 check inter 1000 fall 2 rise 1 weight 100',
      '    server hsc-web-2 10.0.0.2:80 check inter 1000 fall 2 rise 1 weight 50',
    ]);
  });
});

describe('replaceRegion', () => {
  const lines = ['    server hsc-a 10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100'];

  it('replaces only what is between the markers of that backend', () => {
    const replaced = replaceRegion(config, '/etc/haproxy/haproxy.cfg', 'be_app', lines);
    expect(replaced.ok).toBe(true);
    if (!replaced.ok) return;
    expect(replaced.value).toBe(
      config.replace(
        "    # Written by haproxy-scaling-sidecar's runtime driver; what is between these two lines is replaced.\n",
        `${lines[0]}\n`,
      ),
    );
  });

  it('handles two backends independently, and replacing again with the same lines changes nothing', () => {
    const first = replaceRegion(config, 'haproxy.cfg', 'be_api', ['    server hsc-x 10.0.0.9:80']);
    const second = first.ok ? replaceRegion(first.value, 'haproxy.cfg', 'be_app', lines) : first;
    expect(second.ok).toBe(true);
    if (!second.ok) return;
    const text = second.value;
    expect(text).toContain('    # hsc:managed-servers begin be_api\n    server hsc-x 10.0.0.9:80\n    # hsc:managed-servers end be_api\n');
    expect(text).toContain(`    # hsc:managed-servers begin be_app\n${lines[0]}\n    # hsc:managed-servers end be_app\n`);
    expect(text).toContain('    server manual-1 127.0.0.1:8080 check inter 1s fall 2 rise 1\n');
    expect(replaceRegion(text, 'haproxy.cfg', 'be_app', lines)).toEqual({ ok: true, value: text });
    // An empty region keeps its two markers.
    const emptied = replaceRegion(text, 'haproxy.cfg', 'be_api', []);
    expect(emptied.ok && emptied.value).toContain('    # hsc:managed-servers begin be_api\n    # hsc:managed-servers end be_api\n');
  });

  it('refuses a backend without a region, naming the file, the backend and the two lines to add', () => {
    const result = replaceRegion(config, '/etc/haproxy/haproxy.cfg', 'be_web', lines);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.kind).toBe('invalid');
    expect(result.error.message).toContain('/etc/haproxy/haproxy.cfg');
    expect(result.error.message).toContain('backend be_web');
    expect(result.error.message).toContain('    # hsc:managed-servers begin be_web\n    # hsc:managed-servers end be_web');
  });

  it.each([
    ['only a begin marker', config.replace('    # hsc:managed-servers end be_app\n', '')],
    ['a doubled region', config.replace('backend be_api\n', 'backend be_api\n    # hsc:managed-servers begin be_app\n    # hsc:managed-servers end be_app\n')],
    ['markers in the wrong order', config.replace('begin be_app', 'TMP').replace('end be_app', 'begin be_app').replace('TMP', 'end be_app')],
    ['a region in another backend', config.replace('backend be_app\n', 'backend be_web\n')],
    ['a region in a frontend', config.replace('backend be_app\n', 'frontend be_app\n')],
    ['a section between the markers', config.replace("    # Written by haproxy-scaling-sidecar's", "frontend fe_x\n    # Written by haproxy-scaling-sidecar's")],
  ])('refuses %s', (_what, text) => {
    expect(replaceRegion(text, 'haproxy.cfg', 'be_app', lines)).toMatchObject({ ok: false, error: { kind: 'invalid' } });
  });
});

describe('writing the file', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hsc-unit-config-'));
    file = join(dir, 'haproxy.cfg');
    await writeFile(file, config);
    await chmod(file, 0o640);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const regions = new Map([
    ['be_app', [{ name: 'hsc-b', address: '10.0.0.6', port: 80, weight: 100 }, { name: 'hsc-a', address: '10.0.0.5', port: 80, weight: 100 }]],
    ['be_api', []],
  ]);

  it('writes every region in one atomic replacement with the same mode, and leaves no temporary file', async () => {
    const before = await stat(file);
    expect(await writeManagedRegions(file, regions, check)).toEqual({ ok: true, value: true });
    const after = await stat(file);
    expect(after.ino).not.toBe(before.ino); // renamed over, not rewritten in place
    expect(after.mode & 0o777).toBe(0o640);
    const text = await readFile(file, 'utf8');
    expect(text).toContain(
      '    # hsc:managed-servers begin be_app\n' +
        "    # Written by haproxy-scaling-sidecar's runtime driver; what is between these two lines is replaced.\n" +
        '    server hsc-a 10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100\n' +
        '    server hsc-b 10.0.0.6:80 check inter 1000 fall 2 rise 1 weight 100\n' +
        '    # hsc:managed-servers end be_app\n',
    );
    expect(text.startsWith('global\n    stats socket /run/haproxy.sock')).toBe(true);
    expect(text.endsWith('frontend fe_stats\n    bind 127.0.0.1:8404\n')).toBe(true);
    expect(await readdir(dir)).toEqual(['haproxy.cfg']);
  });

  it('does not write when nothing changes', async () => {
    await writeManagedRegions(file, regions, check);
    const written = await stat(file);
    expect(await writeManagedRegions(file, regions, check)).toEqual({ ok: true, value: false });
    const again = await stat(file);
    expect([again.ino, again.mtimeMs]).toEqual([written.ino, written.mtimeMs]);
  });

  it('leaves the file alone when one backend has no region', async () => {
    const result = await writeManagedRegions(file, new Map([...regions, ['be_web', []]]), check);
    expect(result).toMatchObject({ ok: false, error: { kind: 'invalid' } });
    expect(await readFile(file, 'utf8')).toBe(config);
  });

  it('reports a missing file and an unwritable directory as edge errors', async () => {
    expect(await writeManagedRegions(join(dir, 'missing.cfg'), regions, check)).toMatchObject({
      ok: false,
      error: { kind: 'not-found', operation: `read ${join(dir, 'missing.cfg')}` },
    });
    expect(await writeFileAtomic(join(dir, 'nodir', 'haproxy.cfg'), 'x')).toMatchObject({ ok: false, error: { kind: 'not-found' } });
  });
});
