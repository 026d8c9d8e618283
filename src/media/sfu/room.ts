import { EventEmitter } from 'node:events';
import { AudioMixer, type MixerStats } from '../audio/audio-mixer.ts';
import type { AudioHub } from '../audio/audio-hub.ts';
import { AudioRelay } from '../../replication/audio-relay.ts';
import type { FrameClock } from '../audio/frame-clock.ts';
import type { OpusCodecPool } from '../audio/opus/codec-pool.ts';
import type { VideoLayer } from './video-forwarding.ts';

/** A room's attendee connection, as the room sees it: told of new layers, closed with the room. */
export interface RoomPeer {
  layerAvailable(layer: VideoLayer): void;
  close(): void;
}

export interface MediaRoomEvents {
  /** The room's mixer failed on a frame (`rebuilt`: and rebuilt its codecs) or one of its listeners threw. */
  audioFailure: [error: unknown, rebuilt: boolean];
}

/**
 * One meeting's media on a worker: the audio mixer and the published video layers that
 * subscribers attach to. Signaling decides who publishes and subscribes; the room and its
 * peers move the packets.
 */
export class MediaRoom extends EventEmitter<MediaRoomEvents> {
  /** A replica's room relays the primary's mix; any other room mixes its own. */
  readonly mixer: AudioHub;
  /** The mixer of a room that mixes for itself, driven by the worker's clock. */
  private readonly ownMixer: AudioMixer | undefined;
  readonly peers = new Set<RoomPeer>();
  /** Pipe ends that forward this room's layers, told when a layer appears. */
  readonly layerListeners = new Set<(layer: VideoLayer) => void>();
  private readonly layers = new Map<number, VideoLayer>();

  constructor(
    readonly meetingId: string,
    readonly replica: boolean,
    private readonly clock: FrameClock,
    codecs: OpusCodecPool,
  ) {
    super();
    if (replica) {
      this.mixer = new AudioRelay();
    } else {
      const mixer = new AudioMixer({ codecs });
      mixer.on('failure', (error, rebuilt) => this.emit('audioFailure', error, rebuilt));
      clock.add(mixer);
      this.mixer = this.ownMixer = mixer;
    }
  }

  mixerStats(): MixerStats | undefined {
    return this.ownMixer?.stats();
  }

  addLayer(layer: VideoLayer): void {
    this.layers.set(layer.streamId, layer);
    for (const peer of this.peers) peer.layerAvailable(layer);
    for (const listener of this.layerListeners) listener(layer);
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
    if (this.ownMixer) this.clock.remove(this.ownMixer);
    this.mixer.close();
    for (const peer of this.peers) peer.close();
    for (const layer of this.layers.values()) layer.close();
    this.layers.clear();
  }
}
