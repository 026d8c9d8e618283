import type { ISdkRemoteVideoUpdateFrame } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { Capability } from '../meetings/model.ts';
import type { Offer } from '../media/protocol/sdp.ts';
import type { NegotiationResult, PublishedLayer } from '../media/sfu/peer.ts';
import type { PeerHandle } from '../media/worker/peer-handle.ts';
import { DataAllowance } from './data-messages.ts';

/** Receive m-lines per client: the service's video subscription limit. */
export const VIDEO_SUBSCRIPTION_LIMIT = 25;

export const sends = (c: Capability) => c === 'SendReceive' || c === 'Send';
export const receives = (c: Capability) => c === 'SendReceive' || c === 'Receive';

/**
 * One joined session's media: its peer on the media worker and what its negotiations left. Negotiations run one
 * at a time, each from the state the one before left.
 */
export class SessionMedia {
  /** The client's microphone is muted, as its last SUBSCRIBE or AUDIO_CONTROL said. */
  audioMuted = false;
  readonly dataAllowance: DataAllowance;
  /** The receive m-lines (mid → stream id) that carry a stream now. */
  private receiving = new Map<string, number>();
  private negotiations: Promise<unknown> = Promise.resolve();

  constructor(
    readonly peer: PeerHandle,
    now: number,
  ) {
    this.dataAllowance = new DataAllowance(now);
  }

  serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.negotiations.then(task);
    this.negotiations = run.catch(() => undefined);
    return run;
  }

  /** Has the worker answer `offer`, and keeps what REMOTE_VIDEO_UPDATE changes later. */
  async negotiate(capabilities: { Audio: Capability; Video: Capability }, offer: Offer, publish: PublishedLayer[], subscriptions: number[]): Promise<NegotiationResult> {
    const wanted = receives(capabilities.Video) ? subscriptions.slice(0, VIDEO_SUBSCRIPTION_LIMIT) : [];
    const result = await this.peer.negotiate({
      offer,
      sendAudio: receives(capabilities.Audio),
      receiveAudio: sends(capabilities.Audio),
      publish,
      subscriptions: wanted,
      audioMuted: this.audioMuted,
    });
    const mids = subscriptionMids(offer);
    this.receiving = new Map();
    wanted.forEach((streamId, index) => {
      const mid = mids[index];
      if (mid !== undefined && result.tracks.some((track) => track.streamId === streamId)) this.receiving.set(mid, streamId);
    });
    return result;
  }

  /**
   * REMOTE_VIDEO_UPDATE. With client-side adaptation the client moves a receive m-line to another simulcast layer
   * of the same source this way, and sends no SUBSCRIBE: the m-line keeps its SSRC and track and continues with the
   * new layer at its next key frame. Removed m-lines stop. The peer is told what changes, without an offer; the
   * client expects no answer.
   */
  async updateVideo(update: ISdkRemoteVideoUpdateFrame, groupOf: (streamId: number) => number | undefined, ignored: (mid: string, streamId: number, current: number) => void): Promise<void> {
    const set: { mid: string; streamId: number }[] = [];
    const remove: string[] = [];
    for (const { mid, streamId } of update.addedOrUpdatedVideoSubscriptions ?? []) {
      const current = this.receiving.get(mid ?? '');
      if (current === undefined || !streamId || streamId === current) continue;
      const group = groupOf(streamId);
      if (group === undefined || group !== groupOf(current)) {
        // Another source on this m-line would be a new track to the client, which takes a SUBSCRIBE.
        ignored(mid!, streamId, current);
        continue;
      }
      set.push({ mid: mid!, streamId });
    }
    for (const mid of update.removedVideoSubscriptionMids ?? []) if (this.receiving.has(mid)) remove.push(mid);
    if (set.length === 0 && remove.length === 0) return;
    const carried = await this.peer.updateSubscriptions({ set, remove });
    this.receiving = new Map(carried.filter((s) => s.streamId !== 0 && this.receiving.has(s.mid)).map((s) => [s.mid, s.streamId]));
  }
}

/** The mids of an offer's receive m-lines, in the order MediaPeer.negotiate hands them the subscriptions. */
function subscriptionMids(offer: Offer): string[] {
  const mids: string[] = [];
  let sawCamera = false;
  for (const media of offer.media) {
    if (media.kind === 'application' || media.port === 0 || media.kind === 'audio') continue;
    if (!sawCamera) sawCamera = true;
    else if (media.direction === 'recvonly' || media.direction === 'sendrecv') mids.push(media.mid);
  }
  return mids;
}
