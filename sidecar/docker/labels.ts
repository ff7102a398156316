// The one file of Docker label names the sidecar reads. Compose writes these on every container
// it creates; the sidecar writes the same ones on the replicas it starts, so `docker compose ps`
// lists them.
export const COMPOSE_PROJECT = 'com.docker.compose.project';
export const COMPOSE_SERVICE = 'com.docker.compose.service';
export const COMPOSE_NUMBER = 'com.docker.compose.container-number';

/** The rollout (its id) that started a replica of a new version; absent on every other replica. */
export const ROLLOUT_ID = 'hsc.rollout';
/** Which batch of that rollout started it (0 first), or `restore` for an old-version replica a rollback started. */
export const ROLLOUT_BATCH = 'hsc.rollout.batch';

/** Compose's container number, or undefined when the label is missing or not a number. */
export function composeNumber(labels: Readonly<Record<string, string>>): number | undefined {
  const raw = labels[COMPOSE_NUMBER];
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
}
