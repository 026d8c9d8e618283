import type { ISdkStreamDescriptor } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { PublishedLayer } from '../media/sfu/peer.ts';

/** The service's limit of video sources per meeting. */
export const MAX_VIDEO_SOURCES = 25;

/** One attendee's published video source: a group of simulcast layers, each a stream. */
export interface Publication {
  groupId: number;
  layers: PublishedLayer[];
}

/** A published stream as a pipe knows it. */
export interface StreamRef {
  streamId: number;
  groupId: number;
}

/**
 * Hands out a meeting's stream and group ids. A republished source keeps its group and, layer by layer, its
 * stream ids, so receivers' subscriptions stay valid across a renegotiation.
 */
export class StreamAllocator {
  private nextStreamId = 1;
  private nextGroupId = 1;

  allocate(previous: Publication | undefined, descriptors: ISdkStreamDescriptor[]): Publication {
    const groupId = previous?.groupId ?? this.nextGroupId++;
    const layers = descriptors.map((descriptor, index): PublishedLayer => {
      const kept = previous?.layers[index];
      return {
        streamId: kept?.streamId ?? this.nextStreamId++,
        groupId,
        trackLabel: descriptor.trackLabel || kept?.trackLabel || `amphi-video-${groupId}`,
        maxBitrateKbps: descriptor.maxBitrateKbps ?? 0,
        width: descriptor.width ?? 0,
        height: descriptor.height ?? 0,
        framerate: descriptor.framerate ?? 0,
        layerIndex: index,
        layerCount: descriptors.length,
      };
    });
    return { groupId, layers };
  }
}

/** Whether a renegotiated publication changes what receivers see (stream ids or bitrates). */
export function samePublication(a: Publication | undefined, b: Publication | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.layers.length === b.layers.length &&
    a.layers.every((layer, i) => layer.streamId === b.layers[i]!.streamId && layer.maxBitrateKbps === b.layers[i]!.maxBitrateKbps)
  );
}

export function streamRefs(publication: Publication | undefined): StreamRef[] {
  return (publication?.layers ?? []).map((layer) => ({ streamId: layer.streamId, groupId: layer.groupId }));
}
