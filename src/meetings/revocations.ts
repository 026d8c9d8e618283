/** Why a JoinToken stopped working: its client is told MeetingEnded (410) or AttendeeRemoved (411). */
export type RevocationReason = 'meetingEnded' | 'attendeeRemoved';

/**
 * JoinTokens the control plane revoked (attendee deleted, meeting ended), remembered for a while
 * so a client that retries is told precisely why it can't come back instead of being refused as
 * unknown. Recorded by the meeting service where it deletes; read by signaling through the
 * service. Local to one process today (`LocalTokenRevocations`); a store shared by several
 * nodes (Redis keys with a TTL) implements the same interface.
 */
export interface TokenRevocations {
  revoke(joinTokens: readonly string[], reason: RevocationReason): Promise<void>;
  /** The reason while the revocation is remembered; undefined for a token never revoked or long forgotten. */
  reasonFor(joinToken: string): Promise<RevocationReason | undefined>;
}
