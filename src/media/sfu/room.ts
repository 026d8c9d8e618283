import { EventEmitter } from 'node:events';
import type { AudioHub } from '../audio/audio-hub.ts';
import type { VideoLayer } from './video-forwarding.ts';

/**
 * What is connected to a room, as the room sees it: an attendee's peer, or a pipe end to
 * another room. Each is told of new layers and closed with the room.
 */
export interface RoomPeer {
  layerAvailable(layer: VideoLayer): void;
  close(): void;
}

export interface MediaRoomEvents {
  /** The room closed with everything connected to it; its parent lets go of it. */
  closed: [];
}

/**
 * One meeting's media on a worker: its audio hub and the published video layers that
 * subscribers attach to. Signaling decides who publishes and subscribes; the room and its
 * peers move the packets. The room's parent chooses the hub (a mixer of its own, or a
 * replica's relay of the primary's mix) and the room owns it from then on.
 */
export class MediaRoom<Hub extends AudioHub = AudioHub> extends EventEmitter<MediaRoomEvents> {
  readonly peers = new Set<RoomPeer>();
  private readonly layers = new Map<number, VideoLayer>();
  private closed = false;

  constructor(
    readonly meetingId: string,
    /** Where the room's audio goes: named for what it does in a room that mixes for itself. */
    readonly mixer: Hub,
  ) {
    super();
  }

  addLayer(layer: VideoLayer): void {
    this.layers.set(layer.streamId, layer);
    for (const peer of this.peers) peer.layerAvailable(layer);
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
    for (const peer of this.peers) peer.close();
    this.peers.clear();
    for (const layer of this.layers.values()) layer.close();
    this.layers.clear();
    this.mixer.close();
    this.emit('closed');
  }
}
