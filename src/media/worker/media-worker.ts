import type { Logger } from 'pino';
import { BurstLimiter } from '../../util/burst-limiter.ts';
import type { AudioHub } from '../audio/audio-hub.ts';
import { AudioMixer, MIX_ENCODER_SETTINGS } from '../audio/audio-mixer.ts';
import { getDtlsIdentity, type DtlsIdentity } from '../protocol/dtls.ts';
import { FrameClock, type FrameClockStats } from '../audio/frame-clock.ts';
import { loadOpusBackend } from '../audio/opus/backend.ts';
import { OpusCodecPool, type CodecPoolStats } from '../audio/opus/codec-pool.ts';
import type { MediaPeer } from '../sfu/peer.ts';
import { MediaRoom, type RoomPeer } from '../sfu/room.ts';
import { threadFanOutPacer } from '../sfu/video-forwarding.ts';
import { TrafficCounters, type TrafficSnapshot } from '../transport/traffic-counters.ts';
import { UdpMux } from '../transport/udp-mux.ts';
import { WebRtcTransport, type WebRtcTransportOptions } from '../transport/webrtc-transport.ts';

export interface MediaWorkerOptions {
  /** Address the UDP socket binds to. */
  listenIp: string;
  /** UDP port shared by every attendee of this worker (0: any free port). */
  port: number;
  /** Address put in ICE candidates: what clients can reach. */
  announcedIp: string;
  logger: Logger;
  /** How long a client's ICE consent lasts after its last check (default 30 s, RFC 7675); tests shorten it. */
  consentTimeoutMs?: number;
  /** How often a client's silence is looked at (default 5 s: dropped after 10–15 s without packets); tests shorten it. */
  silenceCheckMs?: number;
}

export interface MediaWorkerStats {
  rooms: number;
  clock: FrameClockStats;
  opus: { backend: string } & CodecPoolStats;
  /** Times a room's mixer rebuilt its codec state after a failure. */
  mixerRebuilds: number;
  /** RTP sent by all its transports since the worker started, and the losses receivers reported. */
  traffic: TrafficSnapshot;
  /** Video packets its fan-out pacer held for a later event-loop turn, and those it dropped after waiting too long. */
  fanOut: { deferredPackets: number; droppedPackets: number };
}

/**
 * A media worker: one UDP port and DTLS identity shared by all the meetings it serves. Rooms
 * and peers are created by signaling as clients join. The worker is the one registry of its
 * rooms by id, and each room of its peers and pipe ends by id.
 */
export class MediaWorker {
  private readonly rooms = new Map<string, MediaRoom>();
  /** Drives every mixer of this worker, one frame each per 20 ms. */
  private readonly clock = new FrameClock();
  private readonly codecs = new OpusCodecPool(loadOpusBackend(), MIX_ENCODER_SETTINGS);
  private readonly failureLog = new BurstLimiter();
  private mixerRebuilds = 0;
  /** Shared by every transport of this worker, its clients' and its pipes'. */
  readonly traffic = new TrafficCounters();

  private constructor(
    private readonly mux: UdpMux,
    private readonly identity: DtlsIdentity,
    private readonly announcedIp: string,
    private readonly logger: Logger,
    private readonly transportOptions: WebRtcTransportOptions,
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
    return new MediaWorker(mux, identity, options.announcedIp, options.logger, {
      consentTimeoutMs: options.consentTimeoutMs,
      silenceCheckMs: options.silenceCheckMs,
    });
  }

  get port(): number {
    return this.mux.port;
  }

  /** A room that mixes its own audio, with this worker's codecs, on this worker's clock. */
  createRoom(id: string): MediaRoom<AudioMixer> {
    this.refuseTaken(id);
    const mixer = new AudioMixer({ codecs: this.codecs });
    mixer.on('failure', (error, rebuilt) => {
      if (rebuilt) this.mixerRebuilds++;
      this.reportFailure(`mixer ${id}`, error);
    });
    this.clock.add(mixer);
    const room = this.register(new MediaRoom(id, mixer));
    room.once('closed', () => this.clock.remove(mixer));
    return room;
  }

  /** A room whose audio comes from elsewhere through `hub` (a replica's relay of its primary's mix). */
  createRelayedRoom<Hub extends AudioHub>(id: string, hub: Hub): MediaRoom<Hub> {
    this.refuseTaken(id);
    return this.register(new MediaRoom(id, hub));
  }

  /** The open room of that id. */
  room(id: string): MediaRoom | undefined {
    return this.rooms.get(id);
  }

  /** Every open room, for the periodic reports. */
  openRooms(): IterableIterator<MediaRoom> {
    return this.rooms.values();
  }

  /** An attendee's peer of any room, by the id its room knows it by (ids are unique on a worker). */
  findPeer(peerId: string): MediaPeer | undefined {
    for (const room of this.rooms.values()) {
      const peer = room.peer(peerId);
      if (peer) return peer;
    }
    return undefined;
  }

  /** A child adopted by any room (a pipe end), by its id. */
  findAdoptedPeer(id: string): RoomPeer | undefined {
    for (const room of this.rooms.values()) {
      const child = room.adoptedPeer(id);
      if (child) return child;
    }
    return undefined;
  }

  private refuseTaken(id: string): void {
    if (this.rooms.has(id)) throw new Error(`room ${id} exists`);
  }

  private register<Hub extends AudioHub>(room: MediaRoom<Hub>): MediaRoom<Hub> {
    this.rooms.set(room.id, room);
    room.once('closed', () => {
      if (this.rooms.get(room.id) === room) this.rooms.delete(room.id);
    });
    return room;
  }

  stats(): MediaWorkerStats {
    return {
      rooms: this.rooms.size,
      clock: this.clock.stats(),
      opus: { backend: this.codecs.backend.name, ...this.codecs.stats() },
      mixerRebuilds: this.mixerRebuilds,
      traffic: this.traffic.snapshot(),
      fanOut: { deferredPackets: threadFanOutPacer.deferredPackets, droppedPackets: threadFanOutPacer.droppedPackets },
    };
  }

  /** Logs a failure once per burst (per room and kind), with how many were left out before it. */
  reportFailure(key: string, error: unknown, message = 'media failure'): void {
    const suppressed = this.failureLog.admit(key);
    if (suppressed >= 0) this.logger.error({ err: error, where: key, suppressed }, message);
  }

  closeRoom(room: MediaRoom): void {
    if (this.rooms.get(room.id) === room) room.close();
  }

  /** An attendee's peer in `room` under `peerId`, over a new WebRTC transport on this worker's port. */
  createPeer(room: MediaRoom, peerId: string, attendeeId: string): MediaPeer {
    if (this.findPeer(peerId)) throw new Error(`peer ${peerId} exists`);
    const transport = new WebRtcTransport(this.mux, this.identity, [{ ip: this.announcedIp, port: this.mux.port }], this.logger.child({ attendeeId }), {
      ...this.transportOptions,
      traffic: this.traffic,
    });
    return room.createPeer(peerId, attendeeId, transport);
  }

  close(): void {
    this.clock.stop();
    for (const room of [...this.rooms.values()]) room.close();
    this.mux.close();
  }
}
