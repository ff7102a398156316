// node:http for the sidecar's ES modules, taken with process.getBuiltinModule instead of an
// `import ... from 'node:http'`. An ES import of a built-in builds its namespace from every export,
// and node:http's WebSocket, MessageEvent and CloseEvent exports are getters that load undici
// (Node's fetch, ~750 KB of JavaScript) on first read: measured, `import { createServer } from
// 'node:http'` alone raised a bare process from 50 to 61 MiB RSS. The sidecar never uses undici.
// Node's issues #57649 and #59686 describe the import's cost.
export const http = process.getBuiltinModule('node:http');
