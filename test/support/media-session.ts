import { readFileSync } from 'node:fs';
import { CreateAttendeeCommand, type ChimeSDKMeetingsClient, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { decodeFrame, FrameType, SdkPingPongType, SdkStreamMediaType, SdkStreamServiceType } from '../../src/signaling/frames.ts';
import { RawClient } from './raw-signaling.ts';
import { serverEndpoint, WebRtcReceiver } from './webrtc-receiver.ts';

/**
 * One client's way into a meeting, as the SDK takes it: CreateAttendee through the API, the signaling
 * WebSocket with its JoinToken, JOIN, SUBSCRIBE with an SDP offer (a recorded Chrome offer carrying this
 * client's own ICE credentials and certificate), then ICE, DTLS and SRTP on its own UDP socket.
 */

interface RecordedOffer {
  sdpOffer: string;
  sendStreams?: { mediaType: string }[];
}

const recorded = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/offers/${name}.json`, import.meta.url), 'utf8')) as RecordedOffer;

/** The recorded offer as this client's: its ICE credentials and certificate fingerprint replace Chrome's. */
function ownOffer(sdp: string, media: WebRtcReceiver): string {
  return sdp
    .replace(/^a=ice-ufrag:.*$/gm, `a=ice-ufrag:${media.iceUfrag}`)
    .replace(/^a=ice-pwd:.*$/gm, `a=ice-pwd:${media.icePwd}`)
    .replace(/^a=fingerprint:.*$/gm, `a=fingerprint:${media.identity.sdpFingerprint}`);
}

export interface JoinedSession {
  signaling: RawClient;
  media: WebRtcReceiver;
  /** The SUBSCRIBE_ACK's tracks (what this client receives) and allocations (what it may send). */
  ack: NonNullable<ReturnType<typeof decodeFrame>['suback']>;
  /** The SDK's keep-alive PINGs (a silent socket is closed after 35 s). */
  keepAlive: NodeJS.Timeout;
}

const PING_INTERVAL_MS = 10_000;

export interface JoinOptions {
  /** Publish the recorded camera and microphone (the primary's presenter), or only receive. */
  publish: boolean;
  /** The recorded offer a publisher sends (test/support/fixtures/offers/<name>.json); the camera's by default. */
  offer?: string;
  /** Video streams to receive (a viewer: the presenter's camera). */
  receiveStreamIds?: number[];
  checkIntervalMs: number;
  authenticateOneIn: number;
}

/** CreateAttendee, signaling and media: resolves once SRTP keys are in place both ways. */
export async function joinMeeting(api: ChimeSDKMeetingsClient, meeting: Meeting, externalUserId: string, options: JoinOptions): Promise<JoinedSession> {
  const attendee = (await api.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
  const signaling = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
  try {
    await signaling.join();
    const media = await WebRtcReceiver.open({ checkIntervalMs: options.checkIntervalMs, authenticateOneIn: options.authenticateOneIn });
    const fixture = recorded(options.publish ? (options.offer ?? 'chrome-camera-and-subscription') : 'chrome-subscribe-one');
    const sendStreams = options.publish
      ? fixture.sendStreams!.map((stream) => ({ ...stream, mediaType: SdkStreamMediaType[stream.mediaType as 'AUDIO' | 'VIDEO'] }))
      : undefined;
    signaling.send({
      type: FrameType.SUBSCRIBE,
      sub: {
        duplex: options.publish ? SdkStreamServiceType.DUPLEX : SdkStreamServiceType.RX,
        sdpOffer: ownOffer(fixture.sdpOffer, media),
        ...(sendStreams ? { sendStreams } : {}),
        receiveStreamIds: [0, ...(options.receiveStreamIds ?? [])],
      },
    });
    const ack = (await signaling.next(FrameType.SUBSCRIBE_ACK, 30_000)).suback!;
    await media.connect(serverEndpoint(ack.sdpAnswer!));
    // Frames the load tool never reads (AUDIO_METADATA, BITRATES, presence) are not kept.
    signaling.frames.length = 0;
    signaling.ws.removeAllListeners('message');
    let pingId = 0;
    const keepAlive = setInterval(() => signaling.send({ type: FrameType.PING_PONG, pingPong: { type: SdkPingPongType.PING, pingId: ++pingId } }), PING_INTERVAL_MS);
    return { signaling, media, ack, keepAlive };
  } catch (error) {
    signaling.ws.close();
    throw error;
  }
}

/** Closes a session as a leaving client does: LEAVE is implied by closing the socket. */
export function leave(session: JoinedSession): void {
  clearInterval(session.keepAlive);
  session.media.close();
  session.signaling.ws.close();
}
