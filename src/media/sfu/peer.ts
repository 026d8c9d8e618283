import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { MixerSink } from '../audio/audio-mixer.ts';
import { FRAME_SAMPLES } from '../audio/audio-mixer.ts';
import type { PeerRoom, RoomPeer } from './room-peer.ts';
import { AudioTimestamps, audioLevel, buildNack, buildPli, buildRemb, readStringExtension, rtp, rtpHeaderLength, rtpPayloadEnd, unwrapRtx, visitRtcp, writeAudioRtpPacket } from '../protocol/rtp.ts';
import { buildAnswer, EXT, type AnswerMedia, type Codec, type Extension, type Offer, type OfferedMedia } from '../protocol/sdp.ts';
import { VideoDownstream, VideoLayer } from './video-forwarding.ts';
import type { WebRtcTransport } from '../transport/webrtc-transport.ts';

/** A video stream a client publishes, as signaling allocated it. */
export interface PublishedLayer {
  streamId: number;
  groupId: number;
  trackLabel: string;
  maxBitrateKbps: number;
  width: number;
  height: number;
  framerate: number;
  layerIndex: number;
  layerCount: number;
}

export interface NegotiationInput {
  offer: Offer;
  /** Whether this client hears the meeting (Audio capability Receive) and may talk (Send). */
  sendAudio: boolean;
  receiveAudio: boolean;
  publish: PublishedLayer[];
  /** Stream ids to receive, in the order of the offer's receive-only video m-lines. */
  subscriptions: number[];
  audioMuted: boolean;
}

export interface NegotiationResult {
  answer: string;
  tracks: { streamId: number; ssrc: number; trackLabel: string }[];
}

/** A receive m-line (by mid) and the stream it carries. */
export interface MidSubscription {
  mid: string;
  streamId: number;
}

/**
 * Client-side simulcast adaptation (REMOTE_VIDEO_UPDATE), without an SDP offer: `set` moves a
 * receive m-line to another stream of the source it carries, `remove` stops m-lines.
 */
export interface SubscriptionUpdate {
  set: MidSubscription[];
  remove: string[];
}

export interface MediaPeerEvents {
  /** The WebRTC transport connected (ICE and DTLS done) or lost its connection. */
  connectionChange: [connected: boolean];
  /** The client sent nothing (media, RTCP, consent checks) for 10–15 s after it had sent something. */
  silent: [];
  /** The peer closed (by its parent or with its room). */
  closed: [];
}

type InboundHandler = (packet: Buffer, headerLength: number, payloadEnd: number) => void;

interface Subscription {
  streamId: number;
  groupId: number;
  label: string;
  downstream: VideoDownstream;
}

const VIDEO_FEEDBACK = ['goog-remb', 'nack', 'nack pli', 'ccm fir'];
const OPUS_FMTP = 'minptime=10;useinbandfec=1';
/** What Amphi tells a publisher it may send, until congestion control is receiver-driven (TWCC). */
const PUBLISHER_BITRATE_CAP_BPS = 2_500_000;
const audioScratch = Buffer.allocUnsafe(1500);
/** -dBov under which a mix frame counts as speech rather than silence. */
const VOICE_LEVEL = 50;

const randomSsrc = () => randomInt(1, 0xffffffff);

/**
 * One client's media on the worker: its WebRTC transport, what it sends (audio into the
 * mixer, video layers into the room) and what it receives (its mix-minus or the shared mix,
 * and one rewritten stream per subscribed video). It writes the SDP answer for every offer
 * from this state.
 */
export class MediaPeer extends EventEmitter<MediaPeerEvents> implements RoomPeer {
  private readonly sessionId = String(randomInt(1, 2 ** 47));
  private version = 0;
  private readonly inbound = new Map<number, InboundHandler>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly downstreamBySsrc = new Map<number, VideoDownstream>();
  private layers: VideoLayer[] = [];
  private readonly layerByRid = new Map<string, VideoLayer>();
  private audioMid: string | undefined;
  private cameraMid: string | undefined;
  private extensionIds = { mid: 0, rid: 0, repairedRid: 0, audioLevel: 0 };
  private opusPayloadType = 111;
  private vp8PayloadType = 96;
  /** The publisher's retransmissions (RFC 4588), when its offer has them: what Amphi's NACKs bring back. */
  private rtxPayloadType = -1;
  private readonly audioOutSsrc = randomSsrc();
  private audioSeq = randomInt(0, 0x7fff);
  private readonly audioTimestamps = new AudioTimestamps(randomInt(0, 0x7fffffff), FRAME_SAMPLES);
  /** What the client's audio m-line allows, and what the attendee's capabilities allow. */
  private clientSendsAudio = false;
  private clientReceivesAudio = false;
  private mayTalk = true;
  private mayListen = true;
  private muted = false;
  private downlinkBps = 0;
  /** When this listener's audio last turned from silence to speech, for latency measurements. */
  private voiceStartedAt = 0;
  private quietPackets = 0;
  private readonly feedbackTimer: NodeJS.Timeout;
  private closed = false;
  private readonly mixSink: MixerSink = { deliver: (payload, level, timestamp) => this.sendAudio(payload, level, timestamp) };
  private readonly rtcpVisitor = {
    pli: (ssrc: number) => this.downstreamBySsrc.get(ssrc)?.requestKeyFrame(),
    fir: (ssrc: number) => this.downstreamBySsrc.get(ssrc)?.requestKeyFrame(),
    nack: (ssrc: number, seq: number) => this.downstreamBySsrc.get(ssrc)?.retransmit(seq),
    remb: (bps: number) => {
      this.downlinkBps = bps;
    },
    receptionReport: (ssrc: number, cumulativeLost: number) => this.lossReported(ssrc, cumulativeLost),
  };
  /** The highest cumulative loss the client reported per stream this peer sends it. */
  private readonly reportedLoss = new Map<number, number>();

  /** Made by its room (`MediaRoom.createPeer`), which closes it with itself. */
  constructor(
    private readonly room: PeerRoom,
    readonly attendeeId: string,
    readonly transport: WebRtcTransport,
  ) {
    super();
    transport.on('rtp', (packet) => this.receiveRtp(packet));
    transport.on('rtcp', (packet) => visitRtcp(packet, this.rtcpVisitor));
    transport.on('connectionChange', (connected) => {
      if (connected) {
        // Both ways, video picks up at a key frame: what this client publishes, and what it receives
        // (after consent lapsed and came back, the decoder lost its reference frames).
        for (const layer of this.layers) layer.requestKeyFrame();
        for (const downstream of this.downstreamBySsrc.values()) downstream.requestKeyFrame();
      }
      this.emit('connectionChange', connected);
    });
    transport.silence.on('silent', () => this.emit('silent'));
    this.feedbackTimer = setInterval(() => this.sendPublisherFeedback(), 1000);
    this.feedbackTimer.unref();
  }

  negotiate(input: NegotiationInput): NegotiationResult {
    const { offer } = input;
    this.transport.setRemoteParameters({ iceUfrag: offer.iceUfrag, icePwd: offer.icePwd, fingerprint: offer.fingerprint });
    this.muted = input.audioMuted;
    const tracks: NegotiationResult['tracks'] = [];
    const answered: AnswerMedia[] = [];
    const pendingSubscriptions = [...input.subscriptions];
    const keptMids = new Set<string>();
    let sawAudio = false;
    let sawCamera = false;
    for (const media of offer.media) {
      if (media.kind === 'application' || media.port === 0 || (media.kind === 'audio' && sawAudio)) {
        answered.push(rejected(media));
      } else if (media.kind === 'audio') {
        sawAudio = true;
        answered.push(this.answerAudio(media, input));
      } else if (!sawCamera) {
        sawCamera = true;
        answered.push(this.answerCamera(media, input.publish));
      } else {
        const wanted = media.direction === 'recvonly' || media.direction === 'sendrecv' ? pendingSubscriptions.shift() : undefined;
        const { answer, track } = this.answerSubscription(media, wanted);
        if (track) {
          tracks.push(track);
          keptMids.add(media.mid);
        }
        answered.push(answer);
      }
    }
    for (const [mid, subscription] of this.subscriptions) {
      if (!keptMids.has(mid)) this.dropSubscription(mid, subscription);
    }
    const answer = buildAnswer({
      sessionId: this.sessionId,
      version: ++this.version,
      iceUfrag: this.transport.iceUfrag,
      icePwd: this.transport.icePwd,
      fingerprint: this.transport.fingerprint,
      candidates: this.transport.candidates,
      cname: 'amphi',
      media: answered,
    });
    return { answer, tracks };
  }

  private answerAudio(media: OfferedMedia, input: NegotiationInput): AnswerMedia {
    const opus = media.codecs.find((c) => c.name === 'opus' && c.clockRate === 48000);
    if (!opus) return rejected(media);
    this.audioMid = media.mid;
    this.opusPayloadType = opus.payloadType;
    this.clientSendsAudio = media.direction === 'sendrecv' || media.direction === 'sendonly';
    this.clientReceivesAudio = media.direction === 'sendrecv' || media.direction === 'recvonly';
    this.mayTalk = input.receiveAudio;
    this.mayListen = input.sendAudio;
    const extensions = pick(media.extensions, [EXT.audioLevel, EXT.mid]);
    this.extensionIds.audioLevel = idOf(extensions, EXT.audioLevel);
    this.extensionIds.mid = idOf(extensions, EXT.mid) || this.extensionIds.mid;
    for (const ssrc of media.ssrcs) this.inbound.set(ssrc, this.receiveAudioPacket);
    this.updateMixer();
    // The answer mirrors the client; capabilities are enforced on the packet path, so that
    // UpdateAttendeeCapabilities takes effect at once, both ways, without a renegotiation.
    return {
      mid: media.mid,
      kind: 'audio',
      direction: direction(this.clientReceivesAudio, this.clientSendsAudio),
      codecs: [{ ...opus, fmtp: OPUS_FMTP, rtcpFeedback: [] }],
      extensions,
      ...(this.clientReceivesAudio ? { send: { ssrc: this.audioOutSsrc, streamId: 'amphi-audio', trackId: 'amphi-audio-mix' } } : {}),
    };
  }

  private answerCamera(media: OfferedMedia, publish: PublishedLayer[]): AnswerMedia {
    this.cameraMid = media.mid;
    const codecs = videoCodecs(media);
    const clientSends = media.direction === 'sendrecv' || media.direction === 'sendonly';
    const publishing = clientSends && publish.length > 0 && codecs.length > 0;
    const extensions = pick(media.extensions, [EXT.mid, EXT.rid, EXT.repairedRid, EXT.absSendTime]);
    this.extensionIds.mid = idOf(extensions, EXT.mid) || this.extensionIds.mid;
    this.extensionIds.rid = idOf(extensions, EXT.rid);
    this.extensionIds.repairedRid = idOf(extensions, EXT.repairedRid);
    if (codecs[0]) this.vp8PayloadType = codecs[0].payloadType;
    this.rtxPayloadType = codecs[1]?.payloadType ?? -1;
    this.updateLayers(publishing ? publish : [], media);
    return {
      mid: media.mid,
      kind: 'video',
      direction: publishing ? 'recvonly' : 'inactive',
      codecs,
      extensions,
      ...(publishing && media.sendRids.length > 1 ? { receiveRids: media.sendRids } : {}),
    };
  }

  private answerSubscription(media: OfferedMedia, streamId: number | undefined): { answer: AnswerMedia; track?: NegotiationResult['tracks'][number] } {
    const codecs = videoCodecs(media).filter((c) => c.name === 'vp8');
    const layer = streamId === undefined ? undefined : this.room.layer(streamId);
    const extensions = pick(media.extensions, [EXT.absSendTime]);
    if (!layer || codecs.length === 0) {
      return { answer: { mid: media.mid, kind: 'video', direction: 'inactive', codecs: videoCodecs(media), extensions } };
    }
    let subscription = this.subscriptions.get(media.mid);
    if (subscription && subscription.groupId !== layer.groupId) {
      this.dropSubscription(media.mid, subscription);
      subscription = undefined;
    }
    if (!subscription) {
      // The client finds a receive transceiver's stream by the label 'v_' + mid (its convention with the service),
      // and keeps the transceiver across resubscriptions only when it does.
      const downstream = new VideoDownstream(randomSsrc(), codecs[0]!.payloadType, idOf(extensions, EXT.absSendTime), this.transport);
      subscription = { streamId: layer.streamId, groupId: layer.groupId, label: `v_${media.mid}`, downstream };
      this.subscriptions.set(media.mid, subscription);
      this.downstreamBySsrc.set(downstream.ssrc, downstream);
    }
    subscription.streamId = layer.streamId;
    subscription.downstream.attach(layer);
    const { downstream, label } = subscription;
    return {
      answer: {
        mid: media.mid,
        kind: 'video',
        direction: 'sendonly',
        codecs,
        extensions,
        send: { ssrc: downstream.ssrc, streamId: label, trackId: `${label}-video` },
      },
      track: { streamId: layer.streamId, ssrc: downstream.ssrc, trackLabel: label },
    };
  }

  /**
   * Moves receive m-lines to other streams of their sources, or stops them, without an offer.
   * A moved m-line keeps its SSRC and track and continues (sequence numbers and timestamps
   * unbroken) at the new stream's next key frame, as a layer switch does. Ignored: a mid that
   * carries nothing now (it takes a SUBSCRIBE), and a stream this room doesn't have or of
   * another source (a new track to the client). Sets apply before removals. Returns what the
   * receive m-lines carry afterwards.
   */
  updateSubscriptions(update: SubscriptionUpdate): MidSubscription[] {
    for (const { mid, streamId } of update.set) {
      const subscription = this.subscriptions.get(mid);
      const layer = this.room.layer(streamId);
      if (!subscription || !layer || layer.groupId !== subscription.groupId) continue;
      subscription.streamId = streamId;
      subscription.downstream.attach(layer);
    }
    for (const mid of update.remove) {
      const subscription = this.subscriptions.get(mid);
      if (subscription) this.dropSubscription(mid, subscription);
    }
    return [...this.subscriptions].map(([mid, subscription]) => ({ mid, streamId: subscription.streamId }));
  }

  private dropSubscription(mid: string, subscription: Subscription): void {
    subscription.downstream.detach();
    this.reportedLoss.delete(subscription.downstream.ssrc);
    this.downstreamBySsrc.delete(subscription.downstream.ssrc);
    this.subscriptions.delete(mid);
  }

  /** Creates, keeps or retires this client's published layers (a layer per simulcast rid). */
  private updateLayers(publish: PublishedLayer[], media: OfferedMedia): void {
    const wanted = new Map(publish.map((layer) => [layer.streamId, layer]));
    for (const layer of this.layers) {
      if (!wanted.has(layer.streamId)) this.room.removeLayer(layer);
    }
    const current = new Map(this.layers.map((layer) => [layer.streamId, layer]));
    this.layers = publish.map((description) => {
      const existing = current.get(description.streamId);
      if (existing) return existing;
      const layer = new VideoLayer(
        description.streamId,
        description.groupId,
        (ssrc) => this.sendRtcp(buildPli(this.audioOutSsrc, ssrc)),
        (ssrc, sequences) => this.sendRtcp(buildNack(this.audioOutSsrc, ssrc, sequences)),
      );
      this.room.addLayer(layer);
      return layer;
    });
    this.layerByRid.clear();
    for (const [ssrc, handler] of this.inbound) if (handler !== this.receiveAudioPacket) this.inbound.delete(ssrc);
    if (media.sendRids.length > 1) {
      // Allocations and rids are matched by position (low, mid, hi).
      media.sendRids.forEach((rid, i) => {
        const layer = this.layers[i];
        if (layer) this.layerByRid.set(rid, layer);
      });
    } else if (this.layers[0]) {
      const layer = this.layers[0];
      const ssrc = media.ssrcs[0];
      if (ssrc !== undefined) {
        layer.ssrc = ssrc;
        this.inbound.set(ssrc, (packet, headerLength, payloadEnd) => layer.receive(packet, headerLength, payloadEnd));
      }
      for (const rtxSsrc of media.rtxSsrcs.values()) this.inbound.set(rtxSsrc, (packet, headerLength, payloadEnd) => this.receiveRepair(layer, packet, headerLength, payloadEnd));
    }
  }

  /** A published layer became available in the room: subscriptions waiting for it attach. */
  layerAvailable(layer: VideoLayer): void {
    for (const subscription of this.subscriptions.values()) {
      if (subscription.streamId === layer.streamId) subscription.downstream.attach(layer);
    }
  }

  unpublish(): void {
    for (const layer of this.layers) this.room.removeLayer(layer);
    this.layers = [];
    this.layerByRid.clear();
  }

  setMuted(muted: boolean): void {
    this.muted = muted;
    this.updateMixer();
  }

  setPaused(streamIds: number[], paused: boolean): void {
    const ids = new Set(streamIds);
    for (const subscription of this.subscriptions.values()) {
      if (ids.has(subscription.streamId)) {
        subscription.downstream.paused = paused;
        if (!paused) subscription.downstream.requestKeyFrame();
      }
    }
  }

  applyCapabilities(capabilities: { sendAudio: boolean; receiveAudio: boolean; receiveVideo: boolean }): void {
    this.mayListen = capabilities.sendAudio;
    this.mayTalk = capabilities.receiveAudio;
    if (!capabilities.receiveVideo) for (const [mid, subscription] of this.subscriptions) this.dropSubscription(mid, subscription);
    this.updateMixer();
  }

  stats() {
    return {
      connected: this.transport.connected,
      /** RFC 7675: whether the client still consents to receive (its checks keep coming), and its last check. */
      consentFresh: this.transport.consentFresh,
      lastConsentAt: this.transport.lastConsentAt,
      transport: { ...this.transport.stats },
      downlinkBps: this.downlinkBps,
      voiceStartedAt: this.voiceStartedAt,
      talking: this.room.mixer.talkerIds().includes(this.attendeeId),
      subscriptions: [...this.subscriptions].map(([mid, { streamId, downstream }]) => ({
        mid,
        streamId,
        ssrc: downstream.ssrc,
        forwarded: downstream.forwarded,
        nacked: downstream.nacked,
        retransmitted: downstream.retransmitted,
        missed: downstream.missed,
      })),
      layers: this.layers.map(({ streamId, ssrc, packets, keyFrames, keyFrameRequests, resendRequests, recovered }) => ({
        streamId,
        ssrc,
        packets,
        keyFrames,
        keyFrameRequests,
        resendRequests,
        recovered,
      })),
    };
  }

  estimatedDownlinkBps(): number {
    return this.downlinkBps;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.feedbackTimer);
    this.room.mixer.removeSink(this.mixSink);
    this.room.mixer.removeSource(this.attendeeId);
    this.unpublish();
    for (const [mid, subscription] of this.subscriptions) this.dropSubscription(mid, subscription);
    this.transport.close();
    this.emit('closed');
  }

  private get receivingAudio(): boolean {
    return this.clientSendsAudio && this.mayTalk && !this.closed;
  }

  private updateMixer(): void {
    const mixer = this.room.mixer;
    if (this.receivingAudio && !this.muted) mixer.addSource(this.attendeeId);
    else mixer.removeSource(this.attendeeId);
    if (this.clientReceivesAudio && this.mayListen && !this.closed) mixer.addSink(this.mixSink, this.attendeeId);
    else mixer.removeSink(this.mixSink);
  }

  private receiveRtp(packet: Buffer): void {
    const headerLength = rtpHeaderLength(packet);
    if (headerLength < 0) return;
    const payloadEnd = rtpPayloadEnd(packet);
    if (payloadEnd < headerLength) return;
    const ssrc = rtp.ssrc(packet);
    const handler = this.inbound.get(ssrc) ?? this.classify(packet, ssrc);
    handler?.(packet, headerLength, payloadEnd);
  }

  /** Works out what an unannounced SSRC carries (simulcast layers arrive so) from its mid and rid. */
  private classify(packet: Buffer, ssrc: number): InboundHandler | undefined {
    const mid = readStringExtension(packet, this.extensionIds.mid);
    const payloadType = rtp.payloadType(packet);
    let handler: InboundHandler | undefined;
    if (mid === this.audioMid || (mid === undefined && payloadType === this.opusPayloadType)) {
      handler = this.receiveAudioPacket;
    } else if (mid === this.cameraMid || (mid === undefined && this.layers.length > 0)) {
      const rid = readStringExtension(packet, this.extensionIds.rid);
      const layer = rid !== undefined ? this.layerByRid.get(rid) : this.layers.length === 1 ? this.layers[0] : undefined;
      const repairedRid = readStringExtension(packet, this.extensionIds.repairedRid);
      if (repairedRid !== undefined) {
        const repaired = this.layerByRid.get(repairedRid);
        handler = repaired && payloadType === this.rtxPayloadType ? (p, h, e) => this.receiveRepair(repaired, p, h, e) : ignore;
      } else if (layer && payloadType === this.vp8PayloadType) {
        layer.ssrc = ssrc;
        handler = (p, h, e) => layer.receive(p, h, e);
      }
    }
    if (handler && this.inbound.size < 64) this.inbound.set(ssrc, handler);
    return handler;
  }

  /** A retransmission the publisher sent on RTX: the layer takes it back as the packet it stands for, to its history and subscribers. */
  private receiveRepair(layer: VideoLayer, packet: Buffer, headerLength: number, payloadEnd: number): void {
    if (layer.ssrc === 0 || this.rtxPayloadType < 0) return;
    const original = unwrapRtx(packet, headerLength, payloadEnd, this.vp8PayloadType, layer.ssrc);
    if (original) layer.receive(original, headerLength, original.length);
  }

  private readonly receiveAudioPacket: InboundHandler = (packet, headerLength, payloadEnd) => {
    if (!this.receivingAudio || this.muted) return;
    this.room.mixer.push(this.attendeeId, packet.subarray(headerLength, payloadEnd), audioLevel(packet, this.extensionIds.audioLevel), rtp.sequence(packet));
  };

  private sendAudio(payload: Buffer, level: number, timestamp: number): void {
    // The transport sends nothing unconnected anyway; this spares the packet and its sequence number.
    if (!this.transport.connected) return;
    const audioTs = this.audioTimestamps.next(timestamp);
    if (audioTs < 0) return;
    if (level > VOICE_LEVEL) this.quietPackets++;
    else {
      if (this.quietPackets >= 10) this.voiceStartedAt = Date.now();
      this.quietPackets = 0;
    }
    this.audioSeq = (this.audioSeq + 1) & 0xffff;
    // With the RFC 6464 level of the mix this listener hears (the receiver's per-packet audio level).
    const length = writeAudioRtpPacket(audioScratch, this.opusPayloadType, this.audioSeq, audioTs, this.audioOutSsrc, this.extensionIds.audioLevel, level, payload);
    this.transport.sendRtp(audioScratch.subarray(0, length));
  }

  /** What the client says it lost of a stream sent to it counts once, for the worker's metrics (RTCP, not the packet path). */
  private lossReported(ssrc: number, cumulativeLost: number): void {
    if (ssrc !== this.audioOutSsrc && !this.downstreamBySsrc.has(ssrc)) return;
    const before = this.reportedLoss.get(ssrc) ?? 0;
    if (cumulativeLost <= before) return;
    this.reportedLoss.set(ssrc, cumulativeLost);
    this.transport.traffic.packetsLost += cumulativeLost - before;
  }

  private sendRtcp(packet: Buffer): void {
    this.transport.sendRtcp(packet);
  }

  private sendPublisherFeedback(): void {
    if (this.layers.length === 0) return;
    const ssrcs = this.layers.map((layer) => layer.ssrc).filter((ssrc) => ssrc !== 0);
    if (ssrcs.length > 0) this.sendRtcp(buildRemb(this.audioOutSsrc, PUBLISHER_BITRATE_CAP_BPS, ssrcs));
  }
}

function ignore(): void {}

function direction(send: boolean, receive: boolean): AnswerMedia['direction'] {
  return send && receive ? 'sendrecv' : send ? 'sendonly' : receive ? 'recvonly' : 'inactive';
}

function rejected(media: OfferedMedia): AnswerMedia {
  return { mid: media.mid, kind: media.kind, rejected: true, direction: 'inactive', codecs: media.codecs.slice(0, 1), extensions: [] };
}

function pick(extensions: Extension[], uris: string[]): Extension[] {
  return extensions.filter((e) => uris.includes(e.uri));
}

function idOf(extensions: Extension[], uri: string): number {
  return extensions.find((e) => e.uri === uri)?.id ?? 0;
}

/** Amphi forwards VP8 (every Chromium and Firefox client offers it), with its RTX if offered. */
function videoCodecs(media: OfferedMedia): Codec[] {
  const vp8 = media.codecs.find((c) => c.name === 'vp8');
  if (!vp8) return [];
  const rtx = media.codecs.find((c) => c.name === 'rtx' && c.fmtp.includes(`apt=${vp8.payloadType}`));
  return [
    { ...vp8, fmtp: '', rtcpFeedback: vp8.rtcpFeedback.filter((fb) => VIDEO_FEEDBACK.includes(fb)) },
    ...(rtx ? [{ ...rtx, rtcpFeedback: [] }] : []),
  ];
}
