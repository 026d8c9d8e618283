import type { AudioHub } from '../audio/audio-hub.ts';
import type { VideoLayer } from './video-forwarding.ts';

/**
 * What is connected to a room, as the room sees it: an attendee's peer (the room made it), or a
 * pipe end to another room (the room adopted it). Each is told of new layers and closed with the
 * room; it announces its own end with `closed`, and the room lets go of it then.
 */
export interface RoomPeer {
  layerAvailable(layer: VideoLayer): void;
  close(): void;
  once(event: 'closed', listener: () => void): unknown;
}

/**
 * What a peer sees of its room: the published layers and the audio hub. A separate type so that
 * peers need not import the room that creates them.
 */
export interface PeerRoom<Hub extends AudioHub = AudioHub> {
  /** Where the room's audio goes: named for what it does in a room that mixes for itself. */
  readonly mixer: Hub;
  addLayer(layer: VideoLayer): void;
  removeLayer(layer: VideoLayer): void;
  layer(streamId: number): VideoLayer | undefined;
}
