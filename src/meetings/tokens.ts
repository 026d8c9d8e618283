import { randomBytes, randomUUID } from 'node:crypto';

export const newId = (): string => randomUUID();

/**
 * A JoinToken in the service's observed shape: unpadded base64 of "<AttendeeId>:<secret>".
 * The secret is 256 random bits in hex. Base64 of text made only of hex digits, '-' and ':'
 * never produces '+', '/' or '=', so the token is a valid WebSocket subprotocol (an HTTP
 * token) and matches the legacy pattern ^[a-zA-Z0-9+/]+$ as well.
 */
export function newJoinToken(attendeeId: string): string {
  const secret = randomBytes(32).toString('hex');
  return Buffer.from(`${attendeeId}:${secret}`).toString('base64').replace(/=+$/, '');
}
