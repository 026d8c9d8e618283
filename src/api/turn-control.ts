import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { forbidden, notFound } from '../meetings/errors.ts';
import { corsPreflight } from './cors.ts';
import type { MeetingService } from '../meetings/service.ts';
import { CONTENT_MODALITY } from '../signaling/frames.ts';
import type { TurnCredentialIssuer } from '../signaling/turn-credentials.ts';

/** MediaPlacement.TurnControlUrl's path. */
export const TURN_CONTROL_PATH = '/v2/turn_sessions';
const AUTH_HEADER = 'x-chime-auth-token';
const AUTH_PREFIX = '_aws_wt_session=';

/**
 * MediaPlacement.TurnControlUrl: SDKs that found no TURN credentials in JOIN_ACK POST here with their JoinToken
 * in `X-Chime-Auth-Token: _aws_wt_session=<token>` and `{"meetingId"}` as the body, and take the JSON answer's
 * username, password, ttl and uris. A token that is not the meeting's is 403 (TURNCredentialsForbidden to the
 * SDK), an ended meeting 404 (MeetingEnded). The browser calls it cross-origin, so every answer allows any origin.
 */
export function registerTurnControl(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>,
  service: MeetingService,
  turn: TurnCredentialIssuer,
): void {
  app.options(TURN_CONTROL_PATH, async (request, reply) => corsPreflight(request, reply));
  app.post(TURN_CONTROL_PATH, async (request, reply) => {
    reply.header('access-control-allow-origin', '*');
    const header = request.headers[AUTH_HEADER];
    const value = Array.isArray(header) ? header[0] : header;
    if (!value?.startsWith(AUTH_PREFIX)) throw forbidden(`The ${AUTH_HEADER} header must carry ${AUTH_PREFIX}<JoinToken>`);
    const token = value.slice(AUTH_PREFIX.length);
    const baseToken = token.endsWith(CONTENT_MODALITY) ? token.slice(0, -CONTENT_MODALITY.length) : token;
    const meetingId = meetingIdOf(request.body);
    const attendee = baseToken ? await service.attendeeForJoinToken(baseToken) : undefined;
    if (!attendee) {
      if ((await service.revocationOf(baseToken)) === 'meetingEnded') throw notFound('The meeting has ended');
      throw forbidden('The JoinToken is not valid');
    }
    if (meetingId !== undefined && meetingId.toLowerCase() !== attendee.MeetingId) throw forbidden('The JoinToken is not one of this meeting');
    if (!(await service.meeting(attendee.MeetingId))) throw notFound('The meeting has ended');
    reply.code(200).header('content-type', 'application/json').send(JSON.stringify(turn.issue(attendee.AttendeeId)));
  });
}

/** The body's meetingId, when the body is the JSON the SDK sends; the token alone names the attendee otherwise. */
function meetingIdOf(body: unknown): string | undefined {
  if (!Buffer.isBuffer(body) || body.length === 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    const id = (parsed as { meetingId?: unknown } | null)?.meetingId;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
