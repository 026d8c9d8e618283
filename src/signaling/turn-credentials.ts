import { createHmac } from 'node:crypto';
import { systemClock, type Clock } from '../util/clock.ts';

/** What JOIN_ACK's `turnCredentials` and the TurnControlUrl's answer carry (the SDK's MeetingSessionTURNCredentials). */
export interface TurnCredentials {
  username: string;
  password: string;
  /** Seconds the credentials stay valid. */
  ttl: number;
  uris: string[];
}

export interface TurnSettings {
  /** `turn:`/`turns:` URIs handed to clients; empty: no TURN. */
  uris: string[];
  /** coturn's `static-auth-secret`. */
  secret?: string;
  /** Credential lifetime in seconds. */
  ttlSeconds: number;
}

export const DEFAULT_TURN_TTL_SECONDS = 86_400;

const TURN_URI = /^turns?:[^\s,]+$/;

/** The comma-separated `--turn-uris` value as a list; a clear error names any entry that is not a TURN URI. */
export function parseTurnUris(list: string): string[] {
  const uris = list.split(',').map((uri) => uri.trim()).filter(Boolean);
  const bad = uris.filter((uri) => !TURN_URI.test(uri));
  if (bad.length > 0) throw new Error(`not a turn: or turns: URI: ${bad.join(', ')}`);
  return uris;
}

/**
 * The TURN REST credential scheme coturn checks with `use-auth-secret`: the username is
 * `<expiry in Unix seconds>:<user>` and the password is the base64 HMAC-SHA1 of the username keyed with the
 * shared secret. coturn refuses the credential once the expiry has passed, with no call back to Amphi.
 */
export function turnRestCredential(secret: string, user: string, expiresAtSeconds: number): { username: string; password: string } {
  const username = `${expiresAtSeconds}:${user}`;
  const password = createHmac('sha1', secret).update(username).digest('base64');
  return { username, password };
}

/**
 * Issues each attendee its TURN credentials. Without URIs it issues the empty credentials the SDK takes as
 * "no TURN": present (so it logs no error), with no URIs (so it keeps its default, direct ICE policy).
 */
export class TurnCredentialIssuer {
  readonly uris: readonly string[];
  private readonly secret: string | undefined;
  private readonly ttlSeconds: number;

  /** `clock` must be wall-clock time: the TURN server compares the expiry with its own clock. */
  constructor(
    settings: TurnSettings,
    private readonly clock: Clock = systemClock,
  ) {
    if (settings.uris.length > 0 && !settings.secret) throw new Error('TURN URIs need the shared secret (--turn-secret) to issue credentials');
    if (!Number.isInteger(settings.ttlSeconds) || settings.ttlSeconds < 1) throw new Error(`TURN credential TTL must be a positive number of seconds, not ${settings.ttlSeconds}`);
    this.uris = [...settings.uris];
    this.secret = settings.secret;
    this.ttlSeconds = settings.ttlSeconds;
  }

  get enabled(): boolean {
    return this.uris.length > 0;
  }

  /** Credentials for `attendeeId`, valid for the TTL from now. */
  issue(attendeeId: string): TurnCredentials {
    if (!this.enabled || !this.secret) return { username: '', password: '', ttl: 0, uris: [] };
    const expiresAt = Math.floor(this.clock.now() / 1000) + this.ttlSeconds;
    return { ...turnRestCredential(this.secret, attendeeId, expiresAt), ttl: this.ttlSeconds, uris: [...this.uris] };
  }
}

/** The issuer of a node configured without TURN. */
export const NO_TURN = new TurnCredentialIssuer({ uris: [], ttlSeconds: DEFAULT_TURN_TTL_SECONDS });
