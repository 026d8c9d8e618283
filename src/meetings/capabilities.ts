import { badRequest } from './errors.ts';
import type { AttendeeCapabilities, Capability, MeetingFeatures } from './model.ts';

const videoEnabled = (features?: MeetingFeatures) => features?.Video?.MaxResolution !== 'None';
const contentEnabled = (features?: MeetingFeatures) => features?.Content?.MaxResolution !== 'None';
const receives = (c: Capability) => c === 'SendReceive' || c === 'Receive';
const sends = (c: Capability) => c === 'SendReceive' || c === 'Send';

/**
 * Capabilities an attendee gets when the request names none: all SendReceive, except for
 * media the meeting disables. Content shares travel as video, so a meeting without video
 * but with content gives Video Receive, as the service documents.
 */
export function defaultCapabilities(features?: MeetingFeatures): AttendeeCapabilities {
  const content = contentEnabled(features);
  return {
    Audio: 'SendReceive',
    Video: videoEnabled(features) ? 'SendReceive' : content ? 'Receive' : 'None',
    Content: content ? 'SendReceive' : 'None',
  };
}

/** The service's capability rules; a violation is a BadRequestException. */
export function checkCapabilities(capabilities: AttendeeCapabilities, features?: MeetingFeatures): void {
  const { Video, Content } = capabilities;
  if (!videoEnabled(features)) {
    // Receive stays possible while content is on: content is received as video.
    if (sends(Video) || (Video === 'Receive' && !contentEnabled(features))) {
      throw badRequest(`Invalid Attendee Capabilities: Video ${Video} is not allowed in a meeting whose MeetingFeatures.Video.MaxResolution is None`);
    }
  }
  if (!contentEnabled(features) && Content !== 'None') {
    throw badRequest(`Invalid Attendee Capabilities: Content ${Content} is not allowed in a meeting whose MeetingFeatures.Content.MaxResolution is None`);
  }
  if (receives(Content) && !receives(Video)) {
    throw badRequest(`Invalid Attendee Capabilities: Content ${Content} requires Video SendReceive or Receive, but Video is ${Video}`);
  }
}
