// The runtime driver's public surface: the factory, its options, and the address check the
// configuration loader uses to reject a bad socket address at start-up.
export { createRuntimeDriver, type RuntimeDriverOptions } from './driver.js';
export { parseSocketAddress, type RuntimeTransport, type SocketAddress } from './socket.js';
