// The contract between the test page (page/app.ts, runs in Chromium) and the Node side (harness.ts).
// Types only, and only plain JSON-serialisable shapes: everything crosses page.evaluate().

/** `{ Meeting }` exactly as CreateMeeting/GetMeeting returned it (the AWS SDK's output object or its `.Meeting`). */
export type MeetingResponse = Record<string, unknown>;
/** `{ Attendee }` exactly as CreateAttendee returned it (the AWS SDK's output object or its `.Attendee`). */
export type AttendeeResponse = Record<string, unknown>;

export type LogLevelName = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'OFF';

export interface JoinOptions {
  meeting: MeetingResponse;
  attendee: AttendeeResponse;
  /** Microphone = a WebAudio sine at this frequency. Without it the microphone is the SDK's silent stream. */
  tone?: { frequency: number; gain?: number };
  /** Start the fake camera and the local video tile once the session has started. */
  camera?: boolean;
  /** Sets `enableSimulcastForUnifiedPlanChromiumBasedBrowsers`. */
  simulcast?: boolean;
  /** The SDK's ConsoleLogger level (default INFO; lines go to the page console → harness buffer). */
  logLevel?: LogLevelName;
  /** How long join() waits for audioVideoDidStart (default 15 000 ms). */
  timeoutMs?: number;
  /** Overrides applied to the MeetingSessionConfiguration after it is built from the responses. */
  config?: {
    connectionTimeoutMs?: number;
    reconnectTimeoutMs?: number;
    attendeePresenceTimeoutMs?: number;
  };
}

export interface ConfigurationSummary {
  meetingId: string | null;
  externalMeetingId: string | null;
  attendeeId: string | null;
  externalUserId: string | null;
  joinTokenPresent: boolean;
  urls: {
    audioHostURL: string | null;
    signalingURL: string | null;
    turnControlURL: string | null;
    eventIngestionURL: string | null;
  };
  simulcast: boolean;
  connectionTimeoutMs: number;
  reconnectTimeoutMs: number;
  attendeePresenceTimeoutMs: number;
}

export interface PageInfo {
  sdkVersion: string;
  userAgent: string;
  /** The page's own origin (the static server). */
  origin: string;
}

export interface PageEvent {
  /** Monotonic sequence number within the page. */
  seq: number;
  /** Date.now() in the page. */
  ts: number;
  /** Observer callback name (audioVideoDidStart, audioVideoDidStop, videoTileDidUpdate, …) or a harness event
   *  (presence, volume, activeSpeakers, dataMessage, localMute, fatalError, sdkEvent, webSocketOpen, webSocketClose, …). */
  name: string;
  detail?: any;
}

export type SessionState = 'idle' | 'connecting' | 'started' | 'stopped';

export interface PageStatus {
  state: SessionState;
  /** MeetingSessionStatusCode name of the last audioVideoDidStop, if any. */
  lastStopStatus: string | null;
  reconnecting: boolean;
  localMuted: boolean | null;
  promoted: boolean;
  localVideo: boolean;
  canStartLocalVideo: boolean | null;
  config: ConfigurationSummary | null;
}

export interface RosterEntry {
  attendeeId: string;
  externalUserId: string | null;
  present: boolean;
  dropped: boolean;
  volume: number | null;
  muted: boolean | null;
  signalStrength: number | null;
  /** Date.now() of the last presence or volume change. */
  updatedAt: number;
}

export interface VolumeEntry {
  attendeeId: string;
  externalUserId: string | null;
  volume: number | null;
  muted: boolean | null;
  signalStrength: number | null;
  ts: number;
}

export interface VideoTileInfo {
  tileId: number;
  boundAttendeeId: string | null;
  boundExternalUserId: string | null;
  active: boolean;
  paused: boolean;
  streamId: number | null;
  groupId: number | null;
  /** The bound <video> element's intrinsic size (0 until frames are rendered). */
  videoWidth: number;
  videoHeight: number;
  /** inbound-rtp video stats of this tile's track (null when not found). */
  framesDecoded: number | null;
  frameWidth: number | null;
  frameHeight: number | null;
  packetsReceived: number | null;
  codec: string | null;
  trackId: string | null;
}

export interface RtpStat {
  type: 'inbound-rtp' | 'outbound-rtp';
  kind: string;
  ssrc: number;
  mid: string | null;
  rid: string | null;
  trackIdentifier: string | null;
  packets: number;
  bytes: number;
  framesDecoded: number | null;
  framesEncoded: number | null;
  frameWidth: number | null;
  frameHeight: number | null;
  audioLevel: number | null;
  /** Inbound: mean time frames spent in the jitter buffer, its mean target, and the RTP jitter estimate. */
  jitterBufferDelayMs: number | null;
  jitterBufferTargetDelayMs: number | null;
  jitterMs: number | null;
  codec: string | null;
  /** Loss and its repair, where Chromium reports them (null where the stat does not apply). */
  recovery: RtpRecoveryStats;
}

/** RTCStats of loss and repair: inbound as the receiver saw it, outbound as the sender did (from RTCP). */
export interface RtpRecoveryStats {
  /** Inbound: packets lost (net of those that came late or were retransmitted). */
  packetsLost: number | null;
  /** NACKs sent (inbound) or received (outbound). */
  nackCount: number | null;
  /** Key-frame requests sent (inbound) or received (outbound). */
  pliCount: number | null;
  firCount: number | null;
  /** Outbound: packets sent again, on RTX or the primary SSRC. Inbound: packets received on RTX. */
  retransmittedPackets: number | null;
  /** Inbound video: frames dropped before decoding, freezes (frame gaps the decoder could not fill) and their length. */
  framesDropped: number | null;
  freezeCount: number | null;
  totalFreezesDurationS: number | null;
  /** Inbound audio: samples played, and those NetEq made up for lost or late packets (and in how many runs). */
  totalSamplesReceived: number | null;
  concealedSamples: number | null;
  silentConcealedSamples: number | null;
  concealmentEvents: number | null;
  /** Inbound audio: samples recovered from opus in-band FEC. */
  fecPacketsReceived: number | null;
}

/** The ICE candidate pair the page's peer connection sends media on (RTCStats 'candidate-pair' and its two candidates). */
export interface SelectedCandidatePair {
  /** 'host', 'srflx', 'prflx' or 'relay'. */
  localCandidateType: string | null;
  /** For a relay candidate: how the browser reaches the TURN server ('udp', 'tcp' or 'tls'). */
  localRelayProtocol: string | null;
  localAddress: string | null;
  remoteAddress: string | null;
  remotePort: number | null;
  bytesSent: number;
  bytesReceived: number;
}

export interface ToneLevel {
  frequency: number;
  /** Peak power (dBFS-like, from the AnalyserNode) within ±2 bins of the frequency, averaged over the window. */
  levelDb: number;
  /** levelDb − noiseFloorDb (the median over 50 Hz – 8 kHz). */
  snrDb: number;
  /** levelDb − the median of the bins within ±150 Hz (excluding the tone's own ±4 bins). */
  localSnrDb: number;
  /** levelDb − peakDb (0 for the strongest tone). */
  relativeDb: number;
  /** snrDb ≥ 20, localSnrDb ≥ 15, and levelDb ≥ max(−90, peakDb − 40). */
  present: boolean;
}

export interface ToneMeasurement {
  tones: ToneLevel[];
  /** Median bin power over 50 Hz – 8 kHz, in dB. */
  noiseFloorDb: number;
  /** Frequency of the strongest bin over 50 Hz – 8 kHz. */
  peakFrequency: number;
  peakDb: number;
  /** RMS of the time-domain signal over the window, in dBFS (−Infinity-safe: clamped at −200). */
  rmsDb: number;
  /** Number of FFT snapshots averaged. */
  snapshots: number;
  sampleRate: number;
  binHz: number;
}

export interface ReceivedDataMessage {
  topic: string;
  text: string;
  senderAttendeeId: string;
  senderExternalUserId: string;
  timestampMs: number;
  throttled: boolean;
}

export interface WebSocketRecord {
  url: string;
  /** Subprotocols offered (`_aws_wt_session`, then the JoinToken). */
  protocols: string[];
  opened: boolean;
  closeCode: number | null;
  error: boolean;
}

/** What the page exposes as `window.amphi`. */
export interface AmphiPageApi {
  ready: true;
  info(): Promise<PageInfo>;
  /** Builds a MeetingSessionConfiguration from the responses without starting anything. */
  buildConfiguration(meeting: MeetingResponse, attendee: AttendeeResponse, simulcast?: boolean): Promise<ConfigurationSummary>;
  /** Sets everything up and calls start(); resolves right after start() with the configuration summary. */
  startJoin(options: JoinOptions): Promise<ConfigurationSummary>;
  /** startJoin(), then waits for audioVideoDidStart (rejects with the status code name on audioVideoDidStop, or on timeout). */
  join(options: JoinOptions): Promise<ConfigurationSummary>;
  leave(timeoutMs?: number): Promise<string | null>;
  mute(): Promise<void>;
  unmute(): Promise<boolean>;
  /** Changes the generated microphone tone (null = silence); only when joined with a tone. */
  setTone(frequency: number | null): Promise<void>;
  startCamera(): Promise<number>;
  stopCamera(): Promise<void>;
  /** Shares a drawn canvas as content (the SDK's second connection, <attendeeId>#content). */
  startContentShare(): Promise<void>;
  stopContentShare(): Promise<void>;
  promote(credentials: AttendeeResponse): Promise<string>;
  demote(): Promise<void>;
  subscribeData(topic: string): Promise<void>;
  sendData(topic: string, text: string, lifetimeMs?: number): Promise<void>;
  receivedData(): Promise<ReceivedDataMessage[]>;
  roster(): Promise<RosterEntry[]>;
  volumes(): Promise<VolumeEntry[]>;
  activeSpeakers(): Promise<string[]>;
  videoTiles(): Promise<VideoTileInfo[]>;
  rtpStats(): Promise<RtpStat[]>;
  /** The candidate pair in use (null before ICE has selected one). */
  selectedCandidatePair(): Promise<SelectedCandidatePair | null>;
  measureTones(frequencies: number[], ms: number): Promise<ToneMeasurement>;
  /** Date.now() when the first received audio packet louder than `minLevel` (0..1) arrives (before the jitter buffer). */
  audioArrival(minLevel: number, timeoutMs: number): Promise<number>;
  /** Date.now() when `frequency` first appears in the received audio (short FFT, polled every ~3 ms). */
  toneOnset(frequency: number, timeoutMs: number): Promise<number>;
  measureLocalTones(frequencies: number[], ms: number): Promise<ToneMeasurement>;
  events(sinceSeq?: number): Promise<PageEvent[]>;
  status(): Promise<PageStatus>;
  webSockets(): Promise<WebSocketRecord[]>;
}
