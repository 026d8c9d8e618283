import type { Logger } from 'pino';
import { getDtlsIdentity, type DtlsIdentity } from './dtls.ts';
import { MediaPeer } from './peer.ts';
import { MediaRoom } from './room.ts';
import { UdpMux } from './udp-mux.ts';
import { WebRtcTransport } from './webrtc-transport.ts';

export interface MediaWorkerOptions {
  /** Address the UDP socket binds to. */
  listenIp: string;
  /** UDP port shared by every attendee of this worker (0: any free port). */
  port: number;
  /** Address put in ICE candidates: what clients can reach. */
  announcedIp: string;
  logger: Logger;
}

/**
 * A media worker: one UDP port and DTLS identity shared by all the meetings it serves. Rooms
 * and peers are created by signaling as clients join.
 */
export class MediaWorker {
  private readonly rooms = new Set<MediaRoom>();

  private constructor(
    private readonly mux: UdpMux,
    private readonly identity: DtlsIdentity,
    private readonly announcedIp: string,
    private readonly logger: Logger,
  ) {}

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

  createRoom(meetingId: string, replica = false): MediaRoom {
    const room = new MediaRoom(meetingId, replica);
    this.rooms.add(room);
    return room;
  }

  closeRoom(room: MediaRoom): void {
    if (this.rooms.delete(room)) room.close();
  }

  createPeer(room: MediaRoom, attendeeId: string): MediaPeer {
    const transport = new WebRtcTransport(this.mux, this.identity, [{ ip: this.announcedIp, port: this.mux.port }], this.logger.child({ attendeeId }));
    return new MediaPeer(room, attendeeId, transport);
  }

  close(): void {
    for (const room of this.rooms) room.close();
    this.rooms.clear();
    this.mux.close();
  }
}
