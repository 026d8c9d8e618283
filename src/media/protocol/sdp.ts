import sdpTransform from 'sdp-transform';

/**
 * SDP as Amphi handles it: the client's offer parsed into a model, and the answer written
 * from Amphi's own decisions for every m-line (never by transforming the offer), so that it
 * follows the client through every re-offer: growing m-line lists, inactive m-lines,
 * recycled mids, simulcast rids.
 */

export class SdpError extends Error {}

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export type MediaKind = 'audio' | 'video' | 'application';

export interface Codec {
  payloadType: number;
  /** Lowercase encoding name: opus, vp8, h264, rtx, red … */
  name: string;
  clockRate: number;
  channels?: number;
  fmtp: string;
  rtcpFeedback: string[];
}

export interface Extension {
  id: number;
  uri: string;
}

export interface OfferedMedia {
  index: number;
  mid: string;
  kind: MediaKind;
  /** 0 when the client rejected or stopped this m-line. */
  port: number;
  protocol: string;
  direction: Direction;
  codecs: Codec[];
  extensions: Extension[];
  /** Media SSRCs the client will send, in order, with RTX repair SSRCs by media SSRC. */
  ssrcs: number[];
  rtxSsrcs: Map<number, number>;
  msidStream?: string;
  msidTrack?: string;
  /** Simulcast layers the client sends, in the order of its a=rid lines. */
  sendRids: string[];
  simulcast?: string;
}

export interface Offer {
  iceUfrag: string;
  icePwd: string;
  fingerprint: { algorithm: string; value: string };
  setup: string;
  media: OfferedMedia[];
}

export const EXT = {
  audioLevel: 'urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  absSendTime: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  transportCc: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  mid: 'urn:ietf:params:rtp-hdrext:sdes:mid',
  rid: 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
  repairedRid: 'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
} as const;

const DIRECTIONS: readonly Direction[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];
/** As large as the SUBSCRIBE frame that carries an offer may be (signaling's MAX_FRAME_BYTES). */
const MAX_SDP_LENGTH = 256 * 1024;
/**
 * Parsing costs per line (~2 µs for an attribute line the grammar doesn't know): 256 KiB of 8-byte
 * lines would hold the thread ~60 ms. A Chrome offer averages ~33 bytes a line, ~8,000 lines in 256 KiB.
 */
const MAX_SDP_LINES = 10_000;
const MAX_MEDIA_SECTIONS = 64;

function lineCount(text: string): number {
  let lines = 1;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++;
  return lines;
}

export function parseOffer(text: string): Offer {
  if (typeof text !== 'string' || text.length === 0) throw new SdpError('the SDP offer is empty');
  if (text.length > MAX_SDP_LENGTH) throw new SdpError(`the SDP offer is over ${MAX_SDP_LENGTH} characters`);
  if (lineCount(text) > MAX_SDP_LINES) throw new SdpError(`the SDP offer has over ${MAX_SDP_LINES} lines`);
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(text);
  } catch (error) {
    throw new SdpError(`unparsable SDP: ${(error as Error).message}`);
  }
  const sections = session.media ?? [];
  if (sections.length === 0) throw new SdpError('the SDP offer has no m-line');
  if (sections.length > MAX_MEDIA_SECTIONS) throw new SdpError(`the SDP offer has more than ${MAX_MEDIA_SECTIONS} m-lines`);
  const first = sections[0]!;
  // sdp-transform turns numeric-looking values into numbers, so every text read here goes through asText().
  const iceUfrag = asText(first.iceUfrag ?? session.iceUfrag);
  const icePwd = asText(first.icePwd ?? session.icePwd);
  const fingerprint = first.fingerprint ?? session.fingerprint;
  if (!iceUfrag || !icePwd) throw new SdpError('the SDP offer has no ICE credentials');
  if (!fingerprint?.hash || !fingerprint.type) throw new SdpError('the SDP offer has no DTLS fingerprint');
  const seenMids = new Set<string>();
  const media = sections.map((section, index): OfferedMedia => {
    const kind = section.type;
    if (kind !== 'audio' && kind !== 'video' && kind !== 'application') {
      throw new SdpError(`m-line ${index} has unsupported media type ${String(kind)}`);
    }
    const mid = section.mid === undefined ? String(index) : String(section.mid);
    if (seenMids.has(mid)) throw new SdpError(`mid ${mid} appears twice`);
    seenMids.add(mid);
    const direction = (section.direction ?? 'sendrecv') as Direction;
    if (!DIRECTIONS.includes(direction)) throw new SdpError(`m-line ${mid} has an invalid direction`);
    const fmtps = new Map((section.fmtp ?? []).map((f) => [Number(f.payload), String(f.config)]));
    const feedback = new Map<number, string[]>();
    for (const fb of section.rtcpFb ?? []) {
      const entry = fb.subtype ? `${fb.type} ${fb.subtype}` : fb.type;
      const targets = fb.payload === '*' ? (section.rtp ?? []).map((r) => r.payload) : [Number(fb.payload)];
      for (const pt of targets) feedback.set(pt, [...(feedback.get(pt) ?? []), entry]);
    }
    const codecs = (section.rtp ?? []).map((rtp) => ({
      payloadType: rtp.payload,
      // sdp-transform turns numeric-looking values into numbers: a codec name may come back as one.
      name: String(rtp.codec).toLowerCase(),
      clockRate: rtp.rate ?? 90000,
      ...(rtp.encoding ? { channels: Number(rtp.encoding) } : {}),
      fmtp: fmtps.get(rtp.payload) ?? '',
      rtcpFeedback: feedback.get(rtp.payload) ?? [],
    }));
    const ssrcOrder: number[] = [];
    for (const line of section.ssrcs ?? []) {
      const ssrc = Number(line.id);
      if (!ssrcOrder.includes(ssrc)) ssrcOrder.push(ssrc);
    }
    const rtxSsrcs = new Map<number, number>();
    for (const group of section.ssrcGroups ?? []) {
      const [primary, repair] = String(group.ssrcs).split(' ').map(Number);
      if (group.semantics === 'FID' && primary !== undefined && repair !== undefined) rtxSsrcs.set(primary, repair);
    }
    const repairs = new Set(rtxSsrcs.values());
    const msid = msidOf(section.msid);
    return {
      index,
      mid,
      kind,
      port: section.port,
      protocol: section.protocol,
      direction,
      codecs,
      extensions: (section.ext ?? []).map((e) => ({ id: e.value, uri: e.uri })),
      ssrcs: ssrcOrder.filter((ssrc) => !repairs.has(ssrc)),
      rtxSsrcs,
      ...(msid[0] ? { msidStream: msid[0], msidTrack: msid[1] } : {}),
      sendRids: (section.rids ?? []).filter((r) => r.direction === 'send').map((r) => String(r.id)),
      ...(section.simulcast ? { simulcast: `${section.simulcast.dir1} ${section.simulcast.list1}` } : {}),
    };
  });
  const setup = asText(first.setup ?? session.setup) ?? 'actpass';
  return { iceUfrag, icePwd, fingerprint: { algorithm: String(fingerprint.type).toLowerCase(), value: String(fingerprint.hash).toUpperCase() }, setup, media };
}

function asText(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

export interface SendStream {
  ssrc: number;
  rtxSsrc?: number;
  /** msid stream id: the client looks tracks up by it (SUBSCRIBE_ACK track_label). */
  streamId: string;
  trackId: string;
}

export interface AnswerMedia {
  mid: string;
  kind: MediaKind;
  /** Rejected m-lines are answered with port 0 (only for kinds Amphi never carries). */
  rejected?: boolean;
  direction: Direction;
  codecs: Codec[];
  extensions: Extension[];
  send?: SendStream;
  /** rids Amphi accepts from the client, in order; written as a=rid:<id> recv plus a=simulcast:recv. */
  receiveRids?: string[];
}

export interface AnswerParameters {
  sessionId: string;
  version: number;
  iceUfrag: string;
  icePwd: string;
  fingerprint: string;
  candidates: { ip: string; port: number }[];
  cname: string;
  media: AnswerMedia[];
}

/** Writes the answer from Amphi's decisions. ICE-lite, DTLS passive, BUNDLE, rtcp-mux. */
export function buildAnswer(answer: AnswerParameters): string {
  const bundled = answer.media.filter((m) => !m.rejected).map((m) => m.mid);
  const primary = answer.candidates[0];
  const address = primary?.ip ?? '0.0.0.0';
  const lines = [
    'v=0',
    `o=amphi ${answer.sessionId} ${answer.version} IN IP4 0.0.0.0`,
    's=-',
    't=0 0',
    'a=ice-lite',
    `a=group:BUNDLE ${bundled.join(' ')}`,
    'a=msid-semantic: WMS *',
  ];
  for (const media of answer.media) {
    const payloads = media.codecs.map((c) => c.payloadType);
    const protocol = media.kind === 'application' ? 'UDP/DTLS/SCTP' : 'UDP/TLS/RTP/SAVPF';
    const format = media.kind === 'application' ? 'webrtc-datachannel' : payloads.join(' ') || '0';
    if (media.rejected) {
      lines.push(`m=${media.kind} 0 ${protocol} ${format}`, 'c=IN IP4 0.0.0.0', `a=mid:${media.mid}`, 'a=inactive');
      continue;
    }
    lines.push(
      `m=${media.kind} ${primary?.port ?? 9} ${protocol} ${format}`,
      `c=IN IP4 ${address}`,
      'a=rtcp:9 IN IP4 0.0.0.0',
      `a=ice-ufrag:${answer.iceUfrag}`,
      `a=ice-pwd:${answer.icePwd}`,
      `a=fingerprint:${answer.fingerprint}`,
      'a=setup:passive',
      `a=mid:${media.mid}`,
    );
    for (const ext of media.extensions) lines.push(`a=extmap:${ext.id} ${ext.uri}`);
    lines.push(`a=${media.direction}`);
    if (media.send) lines.push(`a=msid:${media.send.streamId} ${media.send.trackId}`);
    lines.push('a=rtcp-mux');
    if (media.kind === 'video') lines.push('a=rtcp-rsize');
    for (const codec of media.codecs) {
      lines.push(`a=rtpmap:${codec.payloadType} ${rtpmapName(codec.name)}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`);
      for (const fb of codec.rtcpFeedback) lines.push(`a=rtcp-fb:${codec.payloadType} ${fb}`);
      if (codec.fmtp) lines.push(`a=fmtp:${codec.payloadType} ${codec.fmtp}`);
    }
    if (media.receiveRids && media.receiveRids.length > 0) {
      for (const rid of media.receiveRids) lines.push(`a=rid:${rid} recv`);
      lines.push(`a=simulcast:recv ${media.receiveRids.join(';')}`);
    }
    if (media.send) {
      const { ssrc, rtxSsrc, streamId, trackId } = media.send;
      if (rtxSsrc !== undefined) lines.push(`a=ssrc-group:FID ${ssrc} ${rtxSsrc}`);
      for (const s of rtxSsrc === undefined ? [ssrc] : [ssrc, rtxSsrc]) {
        lines.push(`a=ssrc:${s} cname:${answer.cname}`, `a=ssrc:${s} msid:${streamId} ${trackId}`);
      }
    }
    for (const [index, candidate] of answer.candidates.entries()) {
      lines.push(`a=candidate:${index + 1} 1 udp ${2130706431 - index} ${candidate.ip} ${candidate.port} typ host generation 0`);
    }
    lines.push('a=end-of-candidates');
  }
  return lines.join('\r\n') + '\r\n';
}

function msidOf(raw: unknown): string[] {
  if (typeof raw === 'string') return raw.split(' ');
  if (Array.isArray(raw) && raw[0] && typeof raw[0] === 'object') {
    const { id, appdata } = raw[0] as { id?: string; appdata?: string };
    return [id ?? '', appdata ?? ''];
  }
  return [];
}

const RTPMAP_NAMES: Record<string, string> = { opus: 'opus', vp8: 'VP8', vp9: 'VP9', h264: 'H264', rtx: 'rtx', red: 'red', av1: 'AV1' };
const rtpmapName = (name: string) => RTPMAP_NAMES[name] ?? name;
