// hsc: the command line of the sidecar's admin API.
//
//   hsc status                                  backends, servers, states, sessions, drains
//   hsc drain <backend>/<server> [--wait] [--force] [--deadline <seconds>]
//   hsc undrain <backend>/<server>
//   hsc resync
//   hsc rollout --image IMG [--env K=V]... [--batch N] [--canary PCT] [--bake S] [--detach]
//   hsc rollout status [<id>] | rollout rollback <id>   (sidecar/cli/rollout.ts)
//   hsc config check [--file <path>]            validate a configuration file and the environment
//   hsc backtest --prometheus URL [...]        what each policy would have done on your history
//                                               (sidecar/cli/backtest.ts; hsc backtest --help)
//
// --url (HSC_ADMIN_URL, default http://127.0.0.1:9180) and --token (HSC_ADMIN_TOKEN) say where and
// how. `config check` talks to no sidecar: it runs the sidecar's own loader over the file
// (--file, else HSC_CONFIG_FILE) and the environment, as a sidecar started there would.
// Exit codes scripts can rely on:
//   0 done; 1 refused by the sidecar (4xx: unknown server, last ready server, bad token…);
//   2 usage error; 3 sidecar unreachable or failing (5xx, network);
//   4 the drain ended but not cleanly (forced at its deadline, or cancelled);
//   5 the configuration is invalid (the message names the key);
//   6 the rollout ended rolled back (the old version serves).
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfigFromProcess, redactConfig } from '../config/index.js';
import { errorMessage } from '../edge/result.js';
import { backtest } from './backtest.js';
import { rolloutCommand } from './rollout.js';

export const EXIT = { ok: 0, refused: 1, usage: 2, unavailable: 3, drainNotClean: 4, invalidConfig: 5, rolledBack: 6 } as const;

interface Io {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly fetch: typeof fetch;
  readonly env: NodeJS.ProcessEnv;
  /** How the rollout command waits between two reads (tests pass a quick one). */
  readonly sleep?: (ms: number) => Promise<void>;
}

interface ServerView {
  name: string;
  managed: boolean;
  adminState: string | null;
  operationalState: string | null;
  sessions: number | null;
  queue: number | null;
  container: string | null;
  drain: { state: string; startedAt: number; deadlineAt: number } | null;
}

const USAGE =
  'usage: hsc [--url URL] [--token TOKEN] status | drain <backend>/<server> [--wait] [--force] [--deadline S] | undrain <backend>/<server> | resync | rollout --image IMAGE [--env K=V]... [--batch N] [--canary PCT] [--bake S] [--detach] | rollout status [ID] | rollout rollback ID | config check [--file PATH] | backtest --prometheus URL [...]';

/**
 * Loads the configuration exactly as the sidecar does at start-up (loadConfigFromProcess), with
 * --file standing in for HSC_CONFIG_FILE, and prints it as JSON with every secret redacted.
 */
function checkConfig(file: string | undefined, io: Io): number {
  const env = file === undefined ? io.env : { ...io.env, HSC_CONFIG_FILE: file };
  const source = env.HSC_CONFIG_FILE === undefined || env.HSC_CONFIG_FILE === '' ? 'the environment' : `${env.HSC_CONFIG_FILE} and the environment`;
  try {
    const config = loadConfigFromProcess(env);
    // null rather than a missing key for a part that is off (dataplane with the runtime driver).
    io.out(JSON.stringify(redactConfig(config), (_key, value: unknown) => (value === undefined ? null : value), 2));
    io.err(`configuration valid: ${source}`);
    return EXIT.ok;
  } catch (error) {
    // A ConfigError names its key ("configuration key <key>: …"); anything else the loader throws
    // (the scaling policy's own check) is as much a reason not to start.
    io.err(`configuration invalid (${source}): ${errorMessage(error)}`);
    return EXIT.invalidConfig;
  }
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  // The backtest talks to Prometheus, not to the sidecar: its own options.
  if (argv[0] === 'backtest') return backtest(argv.slice(1), { ...io, readFile: (path) => readFile(path, 'utf8') });
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        wait: { type: 'boolean', default: false },
        force: { type: 'boolean', default: false },
        deadline: { type: 'string' },
        file: { type: 'string' },
        image: { type: 'string' },
        env: { type: 'string', multiple: true },
        batch: { type: 'string' },
        canary: { type: 'string' },
        bake: { type: 'string' },
        'ready-timeout': { type: 'string' },
        'max-error-ratio': { type: 'string' },
        'max-latency-ratio': { type: 'string' },
        detach: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    io.err(`${(error as Error).message}\n${USAGE}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(USAGE);
    return EXIT.ok;
  }
  const base = (values.url ?? io.env.HSC_ADMIN_URL ?? 'http://127.0.0.1:9180').replace(/\/+$/, '');
  const token = values.token ?? io.env.HSC_ADMIN_TOKEN ?? '';
  const [command, target, ...extra] = positionals;

  const request = async (method: string, path: string, body?: object): Promise<{ status: number; body: unknown } | undefined> => {
    try {
      const response = await io.fetch(`${base}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(token === '' ? {} : { authorization: `Bearer ${token}` }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as unknown) };
    } catch (error) {
      io.err(`cannot reach the sidecar at ${base}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const failure = (answer: { status: number; body: unknown }): number => {
    const message = (answer.body as { message?: string }).message ?? `HTTP ${answer.status}`;
    io.err(`error (${answer.status}): ${message}`);
    return answer.status >= 500 ? EXIT.unavailable : EXIT.refused;
  };
  const serverPath = (): string | undefined => {
    const match = /^([A-Za-z0-9_.:-]+)\/([A-Za-z0-9_.:-]+)$/.exec(target ?? '');
    if (match === null || extra.length > 0) {
      io.err(`${command} needs one <backend>/<server>\n${USAGE}`);
      return undefined;
    }
    return `/v1/backends/${match[1]}/servers/${match[2]}`;
  };

  switch (command) {
    case 'status': {
      const answer = await request('GET', '/v1/backends');
      if (answer === undefined) return EXIT.unavailable;
      if (answer.status !== 200) return failure(answer);
      for (const backend of answer.body as Array<{ name: string; servers: ServerView[] }>) {
        io.out(`${backend.name}  (${backend.servers.length} servers)`);
        const rows = backend.servers.map((s) => [
          s.name,
          s.managed ? 'managed' : 'manual',
          s.adminState ?? '?',
          s.operationalState ?? '?',
          s.sessions === null ? '-' : String(s.sessions),
          s.queue === null ? '-' : String(s.queue),
          s.container ?? '-',
          s.drain === null ? '' : `drain ${s.drain.state}`,
        ]);
        const header = ['SERVER', 'OWNER', 'ADMIN', 'OPER', 'SESSIONS', 'QUEUE', 'CONTAINER', 'DRAIN'];
        const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
        for (const row of [header, ...rows]) io.out(`  ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}`);
      }
      return EXIT.ok;
    }
    case 'drain': {
      const path = serverPath();
      if (path === undefined) return EXIT.usage;
      const deadline = values.deadline === undefined ? undefined : Number(values.deadline);
      if (deadline !== undefined && !(deadline >= 1)) {
        io.err(`--deadline must be a number of seconds >= 1, not ${values.deadline}`);
        return EXIT.usage;
      }
      const answer = await request('POST', `${path}/drain`, { wait: values.wait, force: values.force, ...(deadline === undefined ? {} : { deadlineSeconds: deadline }) });
      if (answer === undefined) return EXIT.unavailable;
      if (answer.status !== 200 && answer.status !== 202) return failure(answer);
      const outcome = (answer.body as { outcome?: { outcome: string; durationMs: number; sessionsCut?: number } }).outcome;
      if (outcome === undefined) {
        io.out(`draining ${target}`);
        return EXIT.ok;
      }
      const seconds = (outcome.durationMs / 1000).toFixed(1);
      if (outcome.outcome === 'drained') {
        io.out(`${target} drained in ${seconds} s`);
        return EXIT.ok;
      }
      io.out(outcome.outcome === 'forced' ? `${target} forced to maintenance after ${seconds} s; ${outcome.sessionsCut ?? 0} session(s) cut` : `${target} drain ${outcome.outcome}`);
      return EXIT.drainNotClean;
    }
    case 'undrain': {
      const path = serverPath();
      if (path === undefined) return EXIT.usage;
      const answer = await request('POST', `${path}/undrain`, {});
      if (answer === undefined) return EXIT.unavailable;
      if (answer.status !== 200) return failure(answer);
      io.out(`${target} ready`);
      return EXIT.ok;
    }
    case 'config': {
      if (target !== 'check' || extra.length > 0) {
        io.err(`config takes one subcommand, check\n${USAGE}`);
        return EXIT.usage;
      }
      return checkConfig(values.file, io);
    }
    case 'rollout':
      return rolloutCommand([target, ...extra].filter((x): x is string => x !== undefined), values, {
        request,
        failure,
        out: io.out,
        err: io.err,
        ...(io.sleep === undefined ? {} : { sleep: io.sleep }),
      });
    case 'resync': {
      const answer = await request('POST', '/v1/resync', {});
      if (answer === undefined) return EXIT.unavailable;
      if (answer.status !== 202) return failure(answer);
      io.out('reconcile requested');
      return EXIT.ok;
    }
    default:
      io.err(command === undefined ? USAGE : `unknown command ${command}\n${USAGE}`);
      return EXIT.usage;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(process.argv.slice(2), {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    fetch,
    env: process.env,
  }).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`hsc: ${String(error)}`);
      process.exit(EXIT.unavailable);
    },
  );
}
