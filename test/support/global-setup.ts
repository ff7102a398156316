// Runs once around the integration suite: starts from a clean slate and leaves one behind,
// even when a test failed or the previous run crashed.
import { sweepLeftovers } from '../../devenv/localenv.js';
import { removeOwnedContainers } from '../../devenv/containers.js';

async function clean(): Promise<void> {
  // HSC_TEST_SWEEP=0 lets two developers' runs share a machine without removing each
  // other's processes and containers; CI always sweeps.
  if (process.env.HSC_TEST_SWEEP === '0') return;
  await sweepLeftovers('test');
  await removeOwnedContainers('test');
}

export async function setup(): Promise<() => Promise<void>> {
  await clean();
  return clean;
}
