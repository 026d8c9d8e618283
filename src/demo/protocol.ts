// What the demo's server and page say to each other: the JSON answers of /demo/api and the events of its stream.
// Meeting and Attendee are the AWS SDK's shapes, passed through unchanged to the browser SDK.
import type { Attendee, Meeting } from '@aws-sdk/client-chime-sdk-meetings';

/** Where the demo's JSON endpoints live. */
export const DEMO_API_PREFIX = '/demo/api';

/** The topic of chat messages in the primary meeting's realtime data. */
export const CHAT_TOPIC = 'chat';

/** A chat data message's text: sent by a primary attendee, or relayed by the presenter for a viewer (`relayedFor`). */
export interface ChatPayload {
  text: string;
  relayedFor?: string;
}

export interface WebinarInfo {
  webinarId: string;
  title: string;
  /** Viewers in the audience now. */
  watching: number;
}

export interface PresenterSeat {
  webinarId: string;
  title: string;
  /** Proves the presenter to the demo server; kept by the presenter's page only. */
  presenterKey: string;
  meeting: Meeting;
  attendee: Attendee;
}

export interface ViewerSeat {
  webinarId: string;
  title: string;
  viewerId: string;
  /** Proves this viewer to the demo server; kept by the viewer's page only. */
  viewerKey: string;
  /** 1 for the first replica meeting, 2 for the next… */
  replica: number;
  meeting: Meeting;
  attendee: Attendee;
}

export interface AudienceMember {
  viewerId: string;
  name: string;
  replica: number;
  handRaised: boolean;
  onStage: boolean;
}

/** Events of GET /demo/api/webinars/:id/events (server-sent events, one JSON object per `data:` line). */
export type DemoEvent =
  /** Everyone: the audience's size and each replica's viewers; the presenter also gets who they are. */
  | { type: 'audience'; watching: number; replicas: number[]; members?: AudienceMember[] }
  /** The presenter: a viewer's chat message, to relay into the meeting. */
  | { type: 'chat'; name: string; text: string }
  /** A viewer: the primary attendee to be promoted as. */
  | { type: 'stage'; attendee: Attendee }
  /** A viewer: the presenter sends them back to the audience. */
  | { type: 'offStage' }
  /** Everyone: the webinar is over. */
  | { type: 'ended' };

/** The error answer of every demo endpoint. */
export interface DemoErrorBody {
  error: string;
}

/**
 * ExternalUserIds carry the display name, so every page names people from the SDK's roster alone: `<name>|<role id>`.
 * Names are limited to characters the service accepts in an ExternalUserId.
 */
export const NAME_PATTERN = /^[a-zA-Z0-9À-ÿ ._'-]{1,40}$/;
export function displayName(externalUserId: string | null | undefined): string {
  if (!externalUserId) return '';
  const bar = externalUserId.lastIndexOf('|');
  return bar < 0 ? externalUserId : externalUserId.slice(0, bar);
}
