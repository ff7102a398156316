// One way to fail at the edges. Every adapter that talks to something outside the sidecar (the
// Data Plane API, HAProxy's runtime socket, Docker, HAProxy's exporter) answers with a Result:
// a value, or an EdgeError whose kind tells the caller what it can do about it. Throwing is
// kept for the sidecar's own misuse.

export type EdgeErrorKind =
  | 'conflict' // the state changed under us (a version moved, a transaction is outdated): re-read and re-plan
  | 'exists' // the object was created by someone else meanwhile: re-read and re-plan
  | 'not-found' // the object or endpoint does not exist
  | 'invalid' // the request was refused as malformed or not allowed
  | 'unauthorized' // credentials refused
  | 'unsupported' // this HAProxy (or its Data Plane API) cannot do it at all
  | 'unavailable' // the other side answered with a temporary failure
  | 'timeout' // no answer in time
  | 'network' // no connection
  | 'malformed' // an answer that is not what the other side documents
  | 'reload-failed'; // HAProxy did not take the written configuration

export interface EdgeError {
  readonly kind: EdgeErrorKind;
  /** HTTP status, when there was an HTTP answer. */
  readonly status?: number;
  /** The other side's own message where it gave one. */
  readonly message: string;
  /** What the adapter was doing, e.g. "commit transaction 1a2b". */
  readonly operation: string;
}

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: EdgeError };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });

export function fail<T>(operation: string, kind: EdgeErrorKind, message: string, status?: number): Result<T> {
  return { ok: false, error: { kind, operation, message, ...(status === undefined ? {} : { status }) } };
}

/** Kinds after which re-reading the state and planning again is the right answer. */
export const isReplanKind = (kind: EdgeErrorKind): boolean => kind === 'conflict' || kind === 'exists';

/** A message for anything thrown, without casts at every call site. */
export const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
