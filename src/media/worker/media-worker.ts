import type { Logger } from 'pino';
import { BurstLimiter } from '../../util/burst-limiter.ts';
import type { AudioHub } from '../audio/audio-hub.ts';
import { AudioMixer, MIX_ENCODER_SETTINGS } from '../audio/audio-mixer.ts';
import { getDtlsIdentity, type DtlsIdentity } from '../protocol/dtls.ts';
import { FrameClock, type FrameClockStats } from '../audio/frame-clock.ts';
import { loadOpusBackend } from '../audio/opus/backend.ts';
import { OpusCodecPool, type CodecPoolStats } from '../audio/opus/codec-pool.ts';
import { MediaPeer } from '../sfu/peer.ts';
import { MediaRoom } from '../sfu/room.ts';
import { UdpMux } from '../transport/udp-mux.ts';
import { WebRtcTransport } from '../transport/webrtc-transport.ts';

export interface MediaWorkerOptions {
  /** Address the UDP socket binds to. */
  listenIp: string;
  /** UDP port shared by every attendee of this worker (0: any free port). */
  port: number;
  /** Address put in ICE candidates: what clients can reach. */
  announcedIp: string;
  logger: Logger;
}

export interface MediaWorkerStats {
  rooms: number;
  clock: FrameClockStats;
  opus: { backend: string } & CodecPoolStats;
  /** Times a room's mixer rebuilt its codec state after a failure. */
  mixerRebuilds: number;
}

/**
 * A media worker: one UDP port and DTLS identity shared by all the meetings it serves. Rooms
 * and peers are created by signaling as clients join.
 */
export class MediaWorker {
  private readonly rooms = new Set<MediaRoom>();
  /** Drives every mixer of this worker, one frame each per 20 ms. */
  private readonly clock = new FrameClock();
  private readonly codecs = new OpusCodecPool(loadOpusBackend(), MIX_ENCODER_SETTINGS);
  private readonly failureLog = new BurstLimiter();
  private mixerRebuilds = 0;

  private constructor(
    private readonly mux: UdpMux,
    private readonly identity: DtlsIdentity,
    private readonly announcedIp: string,
    private readonly logger: Logger,
  ) {
    this.clock.on('listenerError', (_listener, error) => this.reportFailure('frame', error));
    this.clock.start();
    logger.info({ backend: this.codecs.backend.name }, 'opus codec loaded');
  }

  static async start(options: MediaWorkerOptions): Promise<MediaWorker> {
    const mux = new UdpMux(options.listenIp, options.port, options.logger);
    await mux.start();
    const identity = await getDtlsIdentity();
    options.logger.info({ port: mux.port, announcedIp: options.announcedIp }, 'media worker listening');
    return new MediaWorker(mux, identity, options.announcedIp, options.logger);
  }

  get port(): number {
    return this.mux.port;
  }

  /** A room that mixes its own audio, with this worker's codecs, on this worker's clock. */
  createRoom(meetingId: string): MediaRoom<AudioMixer> {
    const mixer = new AudioMixer({ codecs: this.codecs });
    mixer.on('failure', (error, rebuilt) => {
      if (rebuilt) this.mixerRebuilds++;
      this.reportFailure(`mixer ${meetingId}`, error);
    });
    this.clock.add(mixer);
    const room = this.adopt(new MediaRoom(meetingId, mixer));
    room.once('closed', () => this.clock.remove(mixer));
    return room;
  }

  /** A room whose audio comes from elsewhere through `hub` (a replica's relay of its primary's mix). */
  createRelayedRoom<Hub extends AudioHub>(meetingId: string, hub: Hub): MediaRoom<Hub> {
    return this.adopt(new MediaRoom(meetingId, hub));
  }

  private adopt<Hub extends AudioHub>(room: MediaRoom<Hub>): MediaRoom<Hub> {
    this.rooms.add(room);
    room.once('closed', () => this.rooms.delete(room));
    return room;
  }

  stats(): MediaWorkerStats {
    return {
      rooms: this.rooms.size,
      clock: this.clock.stats(),
      opus: { backend: this.codecs.backend.name, ...this.codecs.stats() },
      mixerRebuilds: this.mixerRebuilds,
    };
  }

  /** Logs a failure once per burst (per room and kind), with how many were left out before it. */
  reportFailure(key: string, error: unknown, message = 'media failure'): void {
    const suppressed = this.failureLog.admit(key);
    if (suppressed >= 0) this.logger.error({ err: error, where: key, suppressed }, message);
  }

  closeRoom(room: MediaRoom): void {
    if (this.rooms.has(room)) room.close();
  }

  createPeer(room: MediaRoom, attendeeId: string): MediaPeer {
    const transport = new WebRtcTransport(this.mux, this.identity, [{ ip: this.announcedIp, port: this.mux.port }], this.logger.child({ attendeeId }));
    return new MediaPeer(room, attendeeId, transport);
  }

  close(): void {
    this.clock.stop();
    for (const room of [...this.rooms]) room.close();
    this.mux.close();
  }
}
