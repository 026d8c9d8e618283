export type DtlsErrorCode =
  | 'fingerprint-mismatch'
  | 'handshake-failure'
  | 'handshake-timeout'
  | 'peer-alert'
  | 'unsupported-fingerprint'
  | 'internal';

/** Why a DTLS session failed (or was refused at construction). */
export class DtlsError extends Error {
  constructor(
    readonly code: DtlsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DtlsError';
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
