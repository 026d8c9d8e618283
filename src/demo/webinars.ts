import { randomBytes, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteAttendeeCommand,
  DeleteMeetingCommand,
  type Attendee,
  type ChimeSDKMeetingsClient,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import type { Logger } from 'pino';
import { KeyedLock } from '../util/keyed-lock.ts';
import { conflict, DemoError, forbidden, notFound, serviceErrorName } from './errors.ts';
import { EventStreams } from './event-streams.ts';
import type { PresenterSeat, ViewerSeat, WebinarInfo } from './protocol.ts';
import { Webinar, type Replica, type Viewer, type WebinarLimits } from './webinar.ts';

export interface WebinarsOptions {
  /** The AWS SDK client aimed at this node's own API with its first key pair (made once the node listens). */
  chime: () => ChimeSDKMeetingsClient;
  limits: WebinarLimits;
  logger: Logger;
  /** Every meeting of a webinar is hosted in this MediaRegion. */
  mediaRegion?: string;
  /** How long a viewer whose event stream closed may take to reconnect before its seat is given back. */
  leaveGraceMs?: number;
  /** How long a viewer told to leave the stage has to demote itself before its primary attendee is deleted. */
  offStageGraceMs?: number;
}

/**
 * The demo's webinars on this node, kept in memory (a cluster's nodes each have their own): the meetings behind
 * them are made and ended through Amphi's own API, as any application would, so the keys stay on the server.
 */
export class Webinars {
  readonly streams = new EventStreams();
  private readonly webinars = new Map<string, Webinar>();
  private readonly joins = new KeyedLock();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly mediaRegion: string;
  private readonly leaveGraceMs: number;
  private readonly offStageGraceMs: number;

  constructor(private readonly options: WebinarsOptions) {
    this.mediaRegion = options.mediaRegion ?? 'us-east-1';
    this.leaveGraceMs = options.leaveGraceMs ?? 10_000;
    this.offStageGraceMs = options.offStageGraceMs ?? 10_000;
    this.streams.on('lastClosed', (channel) => this.streamClosed(channel));
  }

  async start(title: string, name: string): Promise<PresenterSeat> {
    const token = randomUUID();
    const { Meeting: meeting } = await this.call((chime) =>
      chime.send(new CreateMeetingCommand({ ClientRequestToken: token, MediaRegion: this.mediaRegion, ExternalMeetingId: `webinar-${token.slice(0, 8)}` })),
    );
    const attendee = await this.createAttendee(meeting!, `${name}|presenter`);
    const webinar = new Webinar(meeting!, title, newKey(), this.options.limits);
    this.webinars.set(webinar.id, webinar);
    this.options.logger.info({ webinarId: webinar.id }, 'demo webinar started');
    return { webinarId: webinar.id, title, presenterKey: webinar.presenterKey, meeting: meeting!, attendee };
  }

  info(webinarId: string): WebinarInfo {
    const webinar = this.webinar(webinarId);
    return { webinarId, title: webinar.title, watching: webinar.viewers.size };
  }

  async end(webinarId: string, key: string): Promise<void> {
    const webinar = this.webinar(webinarId);
    this.requirePresenter(webinar, key);
    // Deleting the primary ends its replicas too: every page's SDK is told MeetingEnded.
    await this.ignoringNotFound((chime) => chime.send(new DeleteMeetingCommand({ MeetingId: webinar.id })));
    this.forget(webinar);
  }

  /** Seats a viewer in the oldest replica with a free seat, creating the next replica when all are full. */
  join(webinarId: string, name: string): Promise<ViewerSeat> {
    return this.joins.run(webinarId, async () => {
      const webinar = this.webinar(webinarId);
      const id = randomBytes(6).toString('hex');
      for (;;) {
        const replica = webinar.replicaWithFreeSeat() ?? (await this.addReplica(webinar));
        let attendee: Attendee;
        try {
          attendee = await this.createAttendee(replica.meeting, `${name}|v-${id}`);
        } catch (error) {
          // The service deleted this replica (empty for 5 minutes): forget it and seat the viewer in another.
          if (!(error instanceof DemoError && error.status === 404)) throw error;
          webinar.removeReplica(replica);
          continue;
        }
        const viewer = webinar.seat({ id, name, key: newKey(), replica, attendeeId: attendee.AttendeeId! });
        this.audienceChanged(webinar);
        return {
          webinarId,
          title: webinar.title,
          viewerId: id,
          viewerKey: viewer.key,
          replica: replica.number,
          meeting: replica.meeting,
          attendee,
        };
      }
    });
  }

  /** A viewer leaves (its page closes), or the presenter shows them out. */
  async leave(webinarId: string, viewerId: string, key: string): Promise<void> {
    const webinar = this.webinar(webinarId);
    const viewer = this.viewer(webinar, viewerId, key, 'either');
    webinar.viewers.delete(viewer.id);
    this.clearTimer(`${webinar.id}/${viewer.id}`);
    this.clearTimer(`${webinar.id}/${viewer.id}/stage`);
    this.streams.end(`${webinar.id}/${viewer.id}`);
    this.audienceChanged(webinar);
    await this.deleteAttendee(viewer.replica.meeting.MeetingId!, viewer.attendeeId);
    if (viewer.stageAttendeeId) await this.deleteAttendee(webinar.id, viewer.stageAttendeeId);
  }

  raiseHand(webinarId: string, viewerId: string, key: string, raised: boolean): void {
    const webinar = this.webinar(webinarId);
    const viewer = this.viewer(webinar, viewerId, key, 'viewer');
    if (viewer.handRaised === raised) return;
    viewer.handRaised = raised;
    this.streams.send(presenterChannel(webinar), webinar.audienceEvent(true));
  }

  /**
   * A viewer's chat message. Replica viewers can't send realtime data (the service refuses it), so the message goes
   * to the presenter's page, which sends it into the primary meeting, whence replication brings it to every viewer.
   */
  chat(webinarId: string, viewerId: string, key: string, text: string): void {
    const webinar = this.webinar(webinarId);
    const viewer = this.viewer(webinar, viewerId, key, 'viewer');
    if (!this.streams.send(presenterChannel(webinar), { type: 'chat', name: viewer.name, text })) {
      throw conflict("the presenter's page is not connected: audience chat goes through it");
    }
  }

  /** Creates the primary attendee the viewer is promoted as, and hands it to that viewer's page only. */
  async bringOnStage(webinarId: string, viewerId: string, key: string): Promise<void> {
    const webinar = this.webinar(webinarId);
    this.requirePresenter(webinar, key);
    const viewer = this.viewer(webinar, viewerId, undefined, 'presenter');
    if (!this.streams.isOpen(`${webinar.id}/${viewer.id}`)) throw conflict(`${viewer.name}'s page is not connected`);
    const attendee = await this.createAttendee(webinar.primary, `${viewer.name}|s-${viewer.id}`);
    // The viewer may have left while the attendee was made.
    if (webinar.viewers.get(viewer.id) !== viewer) {
      await this.deleteAttendee(webinar.id, attendee.AttendeeId!);
      throw notFound(`${viewer.name} has left`);
    }
    viewer.stageAttendeeId = attendee.AttendeeId;
    viewer.handRaised = false;
    this.streams.send(`${webinar.id}/${viewer.id}`, { type: 'stage', attendee });
    this.audienceChanged(webinar);
  }

  /**
   * Back to the audience. Asked by the presenter, the viewer's page is told to demote itself, and the primary
   * attendee is deleted when it says it did (asked by the viewer) or after a grace period, whichever comes first
   * (deleting it demotes a page that did not).
   */
  async backToAudience(webinarId: string, viewerId: string, key: string): Promise<void> {
    const webinar = this.webinar(webinarId);
    const caller = webinar.participant(key);
    const viewer = this.viewer(webinar, viewerId, key, 'either');
    if (!viewer.stageAttendeeId) return;
    const channel = `${webinar.id}/${viewer.id}`;
    if (caller?.role === 'presenter' && this.streams.send(channel, { type: 'offStage' })) {
      this.setTimer(`${channel}/stage`, this.offStageGraceMs, () => this.leaveStage(webinar, viewer));
      return;
    }
    await this.leaveStage(webinar, viewer);
  }

  /**
   * A meeting ended, by whatever cause (DeleteMeeting from anywhere, the idle deletion): a webinar whose primary it
   * was is over; a replica of one is forgotten, with the viewers it had.
   */
  meetingEnded(meetingId: string): void {
    const webinar = this.webinars.get(meetingId);
    if (webinar) return this.forget(webinar);
    for (const candidate of this.webinars.values()) {
      const replica = candidate.replicas.find((r) => r.meeting.MeetingId === meetingId);
      if (!replica) continue;
      for (const viewer of candidate.viewers.values()) {
        if (viewer.replica !== replica) continue;
        // Their meeting is over (also when the primary's deletion ends its replicas first).
        this.streams.send(`${candidate.id}/${viewer.id}`, { type: 'ended' });
        this.streams.end(`${candidate.id}/${viewer.id}`);
      }
      candidate.removeReplica(replica);
      this.audienceChanged(candidate);
      return;
    }
  }

  /** Answers `response` with the event stream of the participant `key` proves. */
  openStream(webinarId: string, key: string, response: ServerResponse): void {
    const webinar = this.webinar(webinarId);
    const participant = webinar.participant(key);
    if (!participant) throw forbidden('the key is not one of this webinar');
    if (participant.role === 'presenter') {
      this.streams.open(presenterChannel(webinar), response, [webinar.audienceEvent(true)]);
      return;
    }
    const channel = `${webinar.id}/${participant.viewer.id}`;
    this.clearTimer(channel);
    this.streams.open(channel, response, [webinar.audienceEvent(false)]);
  }

  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.streams.close();
  }

  private async leaveStage(webinar: Webinar, viewer: Viewer): Promise<void> {
    this.clearTimer(`${webinar.id}/${viewer.id}/stage`);
    const attendeeId = viewer.stageAttendeeId;
    if (!attendeeId) return;
    viewer.stageAttendeeId = undefined;
    this.audienceChanged(webinar);
    await this.deleteAttendee(webinar.id, attendeeId);
  }

  private async addReplica(webinar: Webinar): Promise<Replica> {
    if (!webinar.mayAddReplica) throw conflict(`the webinar is full: ${webinar.replicas.length} replicas of ${webinar.limits.seatsPerReplica} seats`);
    try {
      const { Meeting: meeting } = await this.call((chime) =>
        chime.send(
          new CreateMeetingCommand({
            ClientRequestToken: randomUUID(),
            MediaRegion: this.mediaRegion,
            ExternalMeetingId: `${webinar.primary.ExternalMeetingId}-r`,
            PrimaryMeetingId: webinar.id,
          }),
        ),
      );
      return webinar.addReplica(meeting!);
    } catch (error) {
      if (error instanceof DemoError && error.status === 404) this.forget(webinar);
      throw error;
    }
  }

  private async createAttendee(meeting: Meeting, externalUserId: string): Promise<Attendee> {
    const { Attendee: attendee } = await this.call((chime) =>
      chime.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId })),
    );
    return attendee!;
  }

  /** One call to Amphi's API, its refusals said as the demo's. */
  private async call<T>(send: (chime: ChimeSDKMeetingsClient) => Promise<T>): Promise<T> {
    try {
      return await send(this.options.chime());
    } catch (error) {
      const name = serviceErrorName(error);
      if (name === 'NotFoundException') throw notFound('this webinar has ended');
      if (name === 'LimitExceededException') throw conflict(`Amphi refused: ${(error as Error).message}`);
      this.options.logger.warn({ err: error }, 'a demo call to the API failed');
      throw new DemoError(502, `Amphi's API failed: ${(error as Error).message}`);
    }
  }

  private deleteAttendee(meetingId: string, attendeeId: string): Promise<void> {
    return this.ignoringNotFound((chime) => chime.send(new DeleteAttendeeCommand({ MeetingId: meetingId, AttendeeId: attendeeId })));
  }

  /** Deletes what may already be gone. */
  private async ignoringNotFound(send: (chime: ChimeSDKMeetingsClient) => Promise<unknown>): Promise<void> {
    await this.call(send).catch((error: unknown) => {
      if (!(error instanceof DemoError && error.status === 404)) throw error;
    });
  }

  private webinar(webinarId: string): Webinar {
    const webinar = this.webinars.get(webinarId);
    if (!webinar) throw notFound('no such webinar on this server (it may have ended)');
    return webinar;
  }

  private requirePresenter(webinar: Webinar, key: string): void {
    if (key !== webinar.presenterKey) throw forbidden("only the webinar's presenter may do this");
  }

  /** The viewer `viewerId`, checking that `key` is its own, the presenter's, or either. */
  private viewer(webinar: Webinar, viewerId: string, key: string | undefined, who: 'viewer' | 'presenter' | 'either'): Viewer {
    const viewer = webinar.viewers.get(viewerId);
    if (!viewer) throw notFound('no such viewer in this webinar');
    const own = key === viewer.key;
    const presenter = key === webinar.presenterKey;
    if (key !== undefined && !((who !== 'presenter' && own) || (who !== 'viewer' && presenter))) throw forbidden('the key does not allow this');
    return viewer;
  }

  private audienceChanged(webinar: Webinar): void {
    this.streams.send(presenterChannel(webinar), webinar.audienceEvent(true));
    const everyone = webinar.audienceEvent(false);
    for (const viewer of webinar.viewers.values()) this.streams.send(`${webinar.id}/${viewer.id}`, everyone);
  }

  private forget(webinar: Webinar): void {
    if (this.webinars.get(webinar.id) !== webinar) return;
    this.webinars.delete(webinar.id);
    for (const channel of [presenterChannel(webinar), ...[...webinar.viewers.keys()].map((id) => `${webinar.id}/${id}`)]) {
      this.clearTimer(channel);
      this.clearTimer(`${channel}/stage`);
      this.streams.send(channel, { type: 'ended' });
      this.streams.end(channel);
    }
    this.options.logger.info({ webinarId: webinar.id }, 'demo webinar ended');
  }

  /** A viewer's page went away: its seat is given back unless it reconnects within the grace period. */
  private streamClosed(channel: string): void {
    const [webinarId, viewerId] = channel.split('/');
    const webinar = this.webinars.get(webinarId!);
    const viewer = webinar?.viewers.get(viewerId!);
    if (!webinar || !viewer) return;
    this.setTimer(channel, this.leaveGraceMs, () => this.leave(webinar.id, viewer.id, viewer.key));
  }

  private setTimer(name: string, ms: number, action: () => Promise<void>): void {
    this.clearTimer(name);
    const timer = setTimeout(() => {
      this.timers.delete(name);
      action().catch((error: unknown) => {
        if (!(error instanceof DemoError && error.status === 404)) this.options.logger.warn({ err: error }, 'a demo clean-up failed');
      });
    }, ms);
    timer.unref();
    this.timers.set(name, timer);
  }

  private clearTimer(name: string): void {
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }
}

const presenterChannel = (webinar: Webinar) => `${webinar.id}/presenter`;
const newKey = () => randomBytes(18).toString('base64url');
