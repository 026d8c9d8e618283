import { EventEmitter } from 'node:events';
import type { AudioHub } from '../audio/audio-hub.ts';
import type { WebRtcTransport } from '../transport/webrtc-transport.ts';
import { MediaPeer } from './peer.ts';
import type { PeerRoom, RoomPeer } from './room-peer.ts';
import type { VideoLayer } from './video-forwarding.ts';

export type { PeerRoom, RoomPeer } from './room-peer.ts';

export interface MediaRoomEvents {
  /** The room closed with everything connected to it; its parent lets go of it. */
  closed: [];
}

/**
 * One meeting's media on a worker: its audio hub and the published video layers that
 * subscribers attach to. Signaling decides who publishes and subscribes; the room and its
 * peers move the packets. The room's parent chooses the hub (a mixer of its own, or a
 * replica's relay of the primary's mix) and the room owns it from then on.
 *
 * The room is the one registry of what is connected to it, by the id its parent chose: the
 * attendees' peers it creates, and the pipe ends it adopts (replication builds those; media
 * can't import it). It closes them all with itself.
 */
export class MediaRoom<Hub extends AudioHub = AudioHub> extends EventEmitter<MediaRoomEvents> implements PeerRoom<Hub> {
  private readonly peers = new Map<string, MediaPeer>();
  private readonly adopted = new Map<string, RoomPeer>();
  private readonly layers = new Map<number, VideoLayer>();
  private closed = false;

  constructor(
    /** What its parent (the worker) knows it by: unique on the worker. */
    readonly id: string,
    /** Where the room's audio goes: named for what it does in a room that mixes for itself. */
    readonly mixer: Hub,
  ) {
    super();
  }

  /** An attendee's media in this room over `transport`, which the peer owns from now on (closed at once if refused). */
  createPeer(id: string, attendeeId: string, transport: WebRtcTransport): MediaPeer {
    if (this.closed) {
      transport.close();
      throw new Error(`room ${this.id} is closed`);
    }
    if (this.has(id)) {
      transport.close();
      throw new Error(`room ${this.id} has a peer ${id} already`);
    }
    const peer = new MediaPeer(this, attendeeId, transport);
    this.peers.set(id, peer);
    peer.once('closed', () => {
      if (this.peers.get(id) === peer) this.peers.delete(id);
    });
    return peer;
  }

  /**
   * Takes `child` (a pipe end) into the room under `id`: it hears of new layers and closes with
   * the room. A closed room closes it at once.
   */
  adopt(id: string, child: RoomPeer): void {
    if (this.closed) {
      child.close();
      return;
    }
    if (this.has(id)) throw new Error(`room ${this.id} has a peer ${id} already`);
    this.adopted.set(id, child);
    child.once('closed', () => {
      if (this.adopted.get(id) === child) this.adopted.delete(id);
    });
  }

  /** The attendee peer created under `id`. */
  peer(id: string): MediaPeer | undefined {
    return this.peers.get(id);
  }

  /** The child adopted under `id` (a pipe end). */
  adoptedPeer(id: string): RoomPeer | undefined {
    return this.adopted.get(id);
  }

  /** Each attendee peer's downlink estimate (bps), by peer id, for the periodic rates report. */
  downlinkEstimates(): [string, number][] {
    const estimates: [string, number][] = [];
    for (const [id, peer] of this.peers) estimates.push([id, peer.estimatedDownlinkBps()]);
    return estimates;
  }

  addLayer(layer: VideoLayer): void {
    this.layers.set(layer.streamId, layer);
    for (const peer of this.peers.values()) peer.layerAvailable(layer);
    for (const child of this.adopted.values()) child.layerAvailable(layer);
  }

  removeLayer(layer: VideoLayer): void {
    if (this.layers.get(layer.streamId) === layer) this.layers.delete(layer.streamId);
    layer.close();
  }

  layer(streamId: number): VideoLayer | undefined {
    return this.layers.get(streamId);
  }

  /** Received bitrate of a published layer, for INDEX and BITRATES. */
  bitrateOf(streamId: number): number {
    return this.layers.get(streamId)?.bitrateBps() ?? 0;
  }

  layerBitrates(): [number, number][] {
    return [...this.layers.values()].map((layer) => [layer.streamId, layer.bitrateBps()]);
  }

  /** Audio level (-dBov) of each attendee now talking. */
  audioLevels(): Map<string, number> {
    return new Map(this.mixer.levels().map(({ id, level }) => [id, level]));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Each child's `closed` takes it out of its map; copies keep the iteration simple.
    for (const peer of [...this.peers.values()]) peer.close();
    for (const child of [...this.adopted.values()]) child.close();
    this.peers.clear();
    this.adopted.clear();
    for (const layer of this.layers.values()) layer.close();
    this.layers.clear();
    this.mixer.close();
    this.emit('closed');
  }

  private has(id: string): boolean {
    return this.peers.has(id) || this.adopted.has(id);
  }
}
