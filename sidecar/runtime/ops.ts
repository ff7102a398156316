// The few runtime-socket operations the Data Plane API driver borrows where the API falls short
// (turning on a runtime-added server's health checks; server states on HAProxy 2.6, where the
// API's runtime reads answer 404). Same socket client and parsers as the runtime driver.
import type { RuntimeSocketOps } from '../driver/port.js';
import { ok } from '../edge/result.js';
import { createRuntimeSocket } from './socket.js';
import { parseServersState, toRuntimeServer } from './state.js';

export function createRuntimeSocketOps(options: { readonly address: string; readonly timeoutMs: number }): RuntimeSocketOps {
  const socket = createRuntimeSocket(options);
  return {
    enableHealth: (backend, server) => socket.execute(`enable health ${backend}/${server}`),
    enableDynamicCookies: (backend) => socket.execute(`enable dynamic-cookie backend ${backend}`),
    setAdminState: (backend, server, state) => socket.execute(`set server ${backend}/${server} state ${state}`),
    setRuntimeWeight: (backend, server, weight) => socket.execute(`set weight ${backend}/${server} ${weight}`),
    async listRuntimeServers(backend) {
      const command = `show servers state ${backend}`;
      const answer = await socket.query(command);
      if (!answer.ok) return answer;
      const parsed = parseServersState(answer.value, command);
      return parsed.ok ? ok(parsed.value.map(toRuntimeServer)) : parsed;
    },
  };
}
