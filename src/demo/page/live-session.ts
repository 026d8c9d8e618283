/// <reference lib="dom" />
// One page's meeting session through the official amazon-chime-sdk-js: a presenter in the primary meeting, or a
// viewer in a replica who may be promoted into the primary (on the connection it has) and demoted again.
import {
  ConsoleLogger,
  DefaultActiveSpeakerPolicy,
  DefaultDeviceController,
  DefaultMeetingSession,
  LogLevel,
  MeetingSessionConfiguration,
  MeetingSessionCredentials,
  MeetingSessionStatusCode,
} from 'amazon-chime-sdk-js';
import type { AudioVideoFacade, AudioVideoObserver, DataMessage, MeetingSessionStatus, VideoTileState } from 'amazon-chime-sdk-js';
import type { Attendee, Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { CHAT_TOPIC, displayName, type ChatPayload } from '../protocol.ts';
import { Emitter } from './emitter.ts';

export interface ChatLine {
  name: string;
  text: string;
  /** Sent by the presenter's page for a viewer in the audience. */
  fromAudience: boolean;
}

export interface OnStagePerson {
  attendeeId: string;
  name: string;
}

type LiveSessionEvents = {
  /** The primary's attendees present changed (the presenter and whoever is on stage). */
  people: [people: OnStagePerson[]];
  speakers: [attendeeIds: string[]];
  tile: [tile: VideoTileState];
  tileRemoved: [tileId: number];
  chat: [line: ChatLine];
  /** Back in the audience, by demote() or because the primary attendee was deleted. */
  demoted: [];
  /** The session is over; `reason` is the SDK's status name (MeetingEnded…). */
  stopped: [reason: string];
};

const statusName = (status: MeetingSessionStatus) => MeetingSessionStatusCode[status.statusCode()] ?? String(status.statusCode());

export class LiveSession extends Emitter<LiveSessionEvents> {
  private readonly audioVideo: AudioVideoFacade;
  private readonly people = new Map<string, OnStagePerson>();
  private promoted = false;
  private cameraOn = false;

  constructor(meeting: Meeting, attendee: Attendee, audioElement: HTMLAudioElement) {
    super();
    const configuration = new MeetingSessionConfiguration({ Meeting: meeting }, { Attendee: attendee });
    const logger = new ConsoleLogger('amphi-demo', LogLevel.WARN);
    const session = new DefaultMeetingSession(configuration, logger, new DefaultDeviceController(logger));
    this.audioVideo = session.audioVideo;
    this.audioVideo.addObserver(this.observer);
    this.audioVideo.realtimeSubscribeToAttendeeIdPresence((attendeeId, present, externalUserId) => {
      if (present) this.people.set(attendeeId, { attendeeId, name: displayName(externalUserId) });
      else this.people.delete(attendeeId);
      this.emit('people', [...this.people.values()]);
    });
    this.audioVideo.subscribeToActiveSpeakerDetector(new DefaultActiveSpeakerPolicy(), (ids) => this.emit('speakers', ids));
    this.audioVideo.realtimeSubscribeToReceiveDataMessage(CHAT_TOPIC, (message) => this.received(message));
    void this.audioVideo.bindAudioElement(audioElement);
  }

  /** Joins; a presenter (`publish`) with microphone and camera, a viewer with neither until promoted. */
  async start(publish: boolean): Promise<void> {
    await this.audioVideo.startAudioInput(publish ? await this.microphone() : null);
    const started = new Promise<void>((resolve, reject) => {
      this.audioVideo.addObserver({
        audioVideoDidStart: () => resolve(),
        audioVideoDidStop: (status) => reject(new Error(`could not join: ${statusName(status)}`)),
      });
    });
    this.audioVideo.start();
    await started;
    if (publish) await this.setCamera(true);
  }

  get isPromoted(): boolean {
    return this.promoted;
  }

  get isCameraOn(): boolean {
    return this.cameraOn;
  }

  get isMuted(): boolean {
    return this.audioVideo.realtimeIsLocalAudioMuted();
  }

  /** On stage: joins the primary as `attendee` on this connection, then opens the microphone and camera. */
  async promote(attendee: Attendee): Promise<void> {
    const credentials = new MeetingSessionCredentials();
    credentials.attendeeId = attendee.AttendeeId ?? null;
    credentials.externalUserId = attendee.ExternalUserId ?? null;
    credentials.joinToken = attendee.JoinToken ?? null;
    const status = await this.audioVideo.promoteToPrimaryMeeting(credentials);
    if (status.statusCode() !== MeetingSessionStatusCode.OK) throw new Error(`could not go on stage: ${statusName(status)}`);
    this.promoted = true;
    await this.audioVideo.startAudioInput(await this.microphone());
    this.audioVideo.realtimeUnmuteLocalAudio();
    await this.setCamera(true);
  }

  /** Back to the audience: camera and microphone off, then out of the primary. */
  async demote(): Promise<void> {
    if (!this.promoted) return;
    this.promoted = false;
    await this.setCamera(false);
    this.audioVideo.demoteFromPrimaryMeeting();
    await this.audioVideo.startAudioInput(null);
    this.emit('demoted');
  }

  setMuted(muted: boolean): void {
    if (muted) this.audioVideo.realtimeMuteLocalAudio();
    else this.audioVideo.realtimeUnmuteLocalAudio();
  }

  async setCamera(on: boolean): Promise<void> {
    if (on) {
      const cameras = await this.audioVideo.listVideoInputDevices();
      await this.audioVideo.startVideoInput(cameras[0]?.deviceId || { width: 1280, height: 720 });
      this.audioVideo.startLocalVideoTile();
    } else {
      this.audioVideo.stopLocalVideoTile();
      await this.audioVideo.stopVideoInput();
    }
    this.cameraOn = on;
  }

  bindVideo(tileId: number, video: HTMLVideoElement): void {
    this.audioVideo.bindVideoElement(tileId, video);
  }

  /** A chat message into the primary meeting; the SDK does not hand a sender its own messages, so it is shown here. */
  sendChat(text: string, relayedFor?: string): void {
    const payload: ChatPayload = relayedFor === undefined ? { text } : { text, relayedFor };
    this.audioVideo.realtimeSendDataMessage(CHAT_TOPIC, JSON.stringify(payload));
    this.emit('chat', { name: relayedFor ?? 'You', text, fromAudience: relayedFor !== undefined });
  }

  leave(): void {
    this.audioVideo.stop();
  }

  private received(message: DataMessage): void {
    if (message.throttled) return;
    let payload: ChatPayload;
    try {
      payload = JSON.parse(message.text()) as ChatPayload;
    } catch {
      return;
    }
    if (typeof payload?.text !== 'string') return;
    const fromAudience = typeof payload.relayedFor === 'string';
    this.emit('chat', { name: fromAudience ? payload.relayedFor! : displayName(message.senderExternalUserId), text: payload.text, fromAudience });
  }

  private async microphone(): Promise<string | null> {
    const microphones = await this.audioVideo.listAudioInputDevices();
    return microphones[0]?.deviceId || 'default';
  }

  private readonly observer: AudioVideoObserver = {
    videoTileDidUpdate: (tile) => {
      if (tile.tileId !== null && !tile.isContent) this.emit('tile', tile);
    },
    videoTileWasRemoved: (tileId) => this.emit('tileRemoved', tileId),
    // Also when the primary attendee is deleted; after demote() there is nothing left to do.
    audioVideoWasDemotedFromPrimaryMeeting: () => {
      if (!this.promoted) return;
      this.promoted = false;
      if (this.cameraOn) void this.setCamera(false);
      void this.audioVideo.startAudioInput(null);
      this.emit('demoted');
    },
    audioVideoDidStop: (status) => this.emit('stopped', statusName(status)),
  };
}
