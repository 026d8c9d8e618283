import { AudioMixer } from './audio-mixer.ts';
import type { MediaPeer } from './peer.ts';
import type { VideoLayer } from './video-forwarding.ts';

/**
 * One meeting's media on a worker: the audio mixer and the published video layers that
 * subscribers attach to. Signaling decides who publishes and subscribes; the room and its
 * peers move the packets.
 */
export class MediaRoom {
  readonly mixer = new AudioMixer();
  readonly peers = new Set<MediaPeer>();
  private readonly layers = new Map<number, VideoLayer>();

  constructor(readonly meetingId: string) {
    this.mixer.start();
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
    this.mixer.stop();
    for (const peer of this.peers) peer.close();
    for (const layer of this.layers.values()) layer.close();
    this.layers.clear();
  }
}
