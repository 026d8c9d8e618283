/// <reference lib="dom" />
// The browser test page: the official amazon-chime-sdk-js (its package index, unmodified), driven from Playwright
// through `window.amphi` (see ../api.ts). It is configured only from the AWS SDK responses the test passes in.
import {
  ConsoleLogger,
  DefaultActiveSpeakerPolicy,
  DefaultDeviceController,
  DefaultMeetingSession,
  LogLevel,
  MeetingSessionConfiguration,
  MeetingSessionCredentials,
  MeetingSessionStatusCode,
  Versioning,
} from 'amazon-chime-sdk-js';
import type {
  AudioVideoFacade,
  AudioVideoObserver,
  DataMessage,
  EventAttributes,
  MeetingSessionStatus,
  MeetingSessionVideoAvailability,
  VideoSource,
  VideoTileState,
  VolumeIndicatorCallback,
} from 'amazon-chime-sdk-js';
import type {
  AmphiPageApi,
  AttendeeResponse,
  ConfigurationSummary,
  JoinOptions,
  MeetingResponse,
  PageEvent,
  PageStatus,
  ReceivedDataMessage,
  RosterEntry,
  RtpStat,
  SessionState,
  ToneLevel,
  ToneMeasurement,
  VideoTileInfo,
  VolumeEntry,
  WebSocketRecord,
} from '../api.ts';

const MAX_EVENTS = 5000;
const DEFAULT_JOIN_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------- event log

const eventLog: PageEvent[] = [];
let nextSeq = 1;
const eventListeners = new Set<(event: PageEvent) => void>();

function logEvent(name: string, detail?: unknown): PageEvent {
  const event: PageEvent = { seq: nextSeq++, ts: Date.now(), name, ...(detail === undefined ? {} : { detail }) };
  eventLog.push(event);
  if (eventLog.length > MAX_EVENTS) eventLog.splice(0, eventLog.length - MAX_EVENTS);
  for (const listener of [...eventListeners]) listener(event);
  return event;
}

/** Resolves with the first event (logged after now) for which `match` returns 'resolve', rejects on 'reject'. */
function awaitEvent(
  match: (event: PageEvent) => 'resolve' | 'reject' | undefined,
  timeoutMs: number,
  what: string,
): Promise<PageEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      eventListeners.delete(listener);
      const recent = eventLog.slice(-8).map((e) => e.name).join(', ');
      reject(new Error(`${what}: timed out after ${timeoutMs} ms (recent events: ${recent})`));
    }, timeoutMs);
    const listener = (event: PageEvent) => {
      const verdict = match(event);
      if (!verdict) return;
      clearTimeout(timer);
      eventListeners.delete(listener);
      if (verdict === 'resolve') resolve(event);
      else {
        const detail = event.detail as { name?: string; code?: number } | undefined;
        const status = detail?.name ? `: ${detail.name} (code ${detail.code})` : ` ${JSON.stringify(event.detail ?? null)}`;
        reject(new Error(`${what} failed with ${event.name}${status}`));
      }
    };
    eventListeners.add(listener);
  });
}

window.addEventListener('unhandledrejection', (event) => logEvent('unhandledRejection', String(event.reason)));
window.addEventListener('error', (event) => logEvent('pageError', String(event.message)));

// ---------------------------------------------------------------- WebSocket recorder (the SDK uses the global)

const webSocketRecords: WebSocketRecord[] = [];
const NativeWebSocket = window.WebSocket;
class RecordingWebSocket extends NativeWebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    const record: WebSocketRecord = {
      url: String(url),
      protocols: protocols === undefined ? [] : Array.isArray(protocols) ? [...protocols] : [protocols],
      opened: false,
      closeCode: null,
      error: false,
    };
    webSocketRecords.push(record);
    if (webSocketRecords.length > 200) webSocketRecords.shift();
    logEvent('webSocketCreate', { url: record.url });
    this.addEventListener('open', () => {
      record.opened = true;
      logEvent('webSocketOpen', { url: record.url });
    });
    this.addEventListener('error', () => {
      record.error = true;
    });
    this.addEventListener('close', (event) => {
      record.closeCode = event.code;
      logEvent('webSocketClose', { url: record.url, code: event.code, reason: event.reason });
    });
  }
}
window.WebSocket = RecordingWebSocket;

// ---------------------------------------------------------------- DOM

function element<T extends HTMLElement>(id: string, tag: string): T {
  let el = document.getElementById(id) as T | null;
  if (!el) {
    el = document.createElement(tag) as T;
    el.id = id;
    document.body.appendChild(el);
  }
  return el;
}
const audioElement = element<HTMLAudioElement>('amphi-audio', 'audio');
audioElement.autoplay = true;
const videoContainer = element<HTMLDivElement>('amphi-videos', 'div');

// ---------------------------------------------------------------- session state

let session: DefaultMeetingSession | null = null;
let audioVideo: AudioVideoFacade | null = null;
let configuration: MeetingSessionConfiguration | null = null;
let state: SessionState = 'idle';
let reconnecting = false;
let lastStopStatus: string | null = null;
let localMuted: boolean | null = null;
let promoted = false;
let localVideo = false;
let canStartLocalVideo: boolean | null = null;
let cameraOnStart = false;

const roster = new Map<string, RosterEntry>();
const volumeSubscribed = new Set<string>();
const latestVolumes = new Map<string, VolumeEntry>();
let currentActiveSpeakers: string[] = [];
const dataTopics = new Set<string>();
const received: ReceivedDataMessage[] = [];
const tileElements = new Map<number, HTMLVideoElement>();

let toneContext: AudioContext | null = null;
let toneOscillator: OscillatorNode | null = null;
let toneGain: GainNode | null = null;
let toneLevel = 0.25;
let microphoneStream: MediaStream | null = null;

const statusName = (status: MeetingSessionStatus): string =>
  MeetingSessionStatusCode[status.statusCode()] ?? String(status.statusCode());

function requireAudioVideo(): AudioVideoFacade {
  if (!audioVideo) throw new Error('not joined: call join() or startJoin() first');
  return audioVideo;
}

// ---------------------------------------------------------------- configuration

/** Lower-cases the first letter of every key, like the SDK does, to read the AWS SDK's shapes. */
function field(object: unknown, name: string): unknown {
  if (!object || typeof object !== 'object') return undefined;
  const record = object as Record<string, unknown>;
  for (const key of Object.keys(record)) if (key.toLowerCase() === name.toLowerCase()) return record[key];
  return undefined;
}
const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);

function makeConfiguration(meeting: MeetingResponse, attendee: AttendeeResponse, simulcast = false): MeetingSessionConfiguration {
  if (!field(meeting, 'Meeting') && !field(meeting, 'MediaPlacement')) throw new Error('meeting: pass { Meeting } from CreateMeeting');
  if (!field(attendee, 'Attendee') && !field(attendee, 'JoinToken')) throw new Error('attendee: pass { Attendee } from CreateAttendee');
  const config = new MeetingSessionConfiguration(meeting, attendee);
  config.enableSimulcastForUnifiedPlanChromiumBasedBrowsers = simulcast;
  return config;
}

function summarize(config: MeetingSessionConfiguration): ConfigurationSummary {
  return {
    meetingId: config.meetingId,
    externalMeetingId: config.externalMeetingId,
    attendeeId: config.credentials?.attendeeId ?? null,
    externalUserId: config.credentials?.externalUserId ?? null,
    joinTokenPresent: Boolean(config.credentials?.joinToken),
    urls: {
      audioHostURL: config.urls?.audioHostURL ?? null,
      signalingURL: config.urls?.signalingURL ?? null,
      turnControlURL: config.urls?.turnControlURL ?? null,
      eventIngestionURL: config.urls?.eventIngestionURL ?? null,
    },
    simulcast: config.enableSimulcastForUnifiedPlanChromiumBasedBrowsers,
    connectionTimeoutMs: config.connectionTimeoutMs,
    reconnectTimeoutMs: config.reconnectTimeoutMs,
    attendeePresenceTimeoutMs: config.attendeePresenceTimeoutMs,
  };
}

// ---------------------------------------------------------------- observers

function tileSummary(tile: VideoTileState) {
  return {
    tileId: tile.tileId,
    localTile: tile.localTile,
    isContent: tile.isContent,
    active: tile.active,
    paused: tile.paused,
    boundAttendeeId: tile.boundAttendeeId,
    boundExternalUserId: tile.boundExternalUserId,
    streamId: tile.streamId,
    groupId: tile.groupId,
  };
}

const observer: AudioVideoObserver = {
  audioVideoDidStartConnecting(isReconnecting: boolean) {
    reconnecting = isReconnecting;
    if (state !== 'started' || isReconnecting) state = 'connecting';
    logEvent('audioVideoDidStartConnecting', { reconnecting: isReconnecting });
  },
  audioVideoDidStart() {
    state = 'started';
    reconnecting = false;
    logEvent('audioVideoDidStart');
    if (cameraOnStart) {
      cameraOnStart = false;
      startCamera().catch((error: unknown) => logEvent('cameraError', String(error)));
    }
  },
  audioVideoDidStop(status: MeetingSessionStatus) {
    state = 'stopped';
    reconnecting = false;
    promoted = false;
    lastStopStatus = statusName(status);
    logEvent('audioVideoDidStop', { code: status.statusCode(), name: lastStopStatus, isFailure: status.isFailure() });
  },
  videoTileDidUpdate(tile: VideoTileState) {
    logEvent('videoTileDidUpdate', tileSummary(tile));
    const tileId = tile.tileId;
    if (tileId === null || !audioVideo) return;
    if (!tileElements.has(tileId)) {
      const video = document.createElement('video');
      video.id = tile.localTile ? 'amphi-local-video' : `amphi-tile-${tileId}`;
      video.autoplay = true;
      video.muted = true;
      video.playsInline = true;
      video.width = 320;
      video.height = 180;
      videoContainer.appendChild(video);
      tileElements.set(tileId, video);
      audioVideo.bindVideoElement(tileId, video);
    }
  },
  videoTileWasRemoved(tileId: number) {
    logEvent('videoTileWasRemoved', { tileId });
    const video = tileElements.get(tileId);
    if (video) {
      tileElements.delete(tileId);
      video.remove();
    }
  },
  videoAvailabilityDidChange(availability: MeetingSessionVideoAvailability) {
    canStartLocalVideo = availability.canStartLocalVideo;
    logEvent('videoAvailabilityDidChange', {
      canStartLocalVideo: availability.canStartLocalVideo,
      remoteVideoAvailable: availability.remoteVideoAvailable,
    });
  },
  connectionDidBecomePoor() {
    logEvent('connectionDidBecomePoor');
  },
  connectionDidSuggestStopVideo() {
    logEvent('connectionDidSuggestStopVideo');
  },
  connectionDidBecomeGood() {
    logEvent('connectionDidBecomeGood');
  },
  videoSendDidBecomeUnavailable() {
    logEvent('videoSendDidBecomeUnavailable');
  },
  remoteVideoSourcesDidChange(sources: VideoSource[]) {
    logEvent('remoteVideoSourcesDidChange', {
      sources: sources.map((s) => ({ attendeeId: s.attendee.attendeeId, externalUserId: s.attendee.externalUserId })),
    });
  },
  encodingSimulcastLayersDidChange(layers: unknown) {
    logEvent('encodingSimulcastLayersDidChange', { layers });
  },
  audioVideoWasDemotedFromPrimaryMeeting(status: MeetingSessionStatus) {
    promoted = false;
    logEvent('audioVideoWasDemotedFromPrimaryMeeting', { code: status.statusCode(), name: statusName(status) });
  },
};

const volumeCallback: VolumeIndicatorCallback = (attendeeId, volume, muted, signalStrength, externalUserId) => {
  const now = Date.now();
  const previous = latestVolumes.get(attendeeId);
  const entry: VolumeEntry = {
    attendeeId,
    externalUserId: externalUserId ?? previous?.externalUserId ?? null,
    volume: volume ?? previous?.volume ?? null,
    muted: muted ?? previous?.muted ?? null,
    signalStrength: signalStrength ?? previous?.signalStrength ?? null,
    ts: now,
  };
  latestVolumes.set(attendeeId, entry);
  const member = roster.get(attendeeId);
  if (member) {
    if (muted !== null && muted !== member.muted) logEvent('remoteMute', { attendeeId, muted });
    member.volume = entry.volume;
    member.muted = entry.muted;
    member.signalStrength = entry.signalStrength;
    member.updatedAt = now;
  }
};

function presenceCallback(attendeeId: string, present: boolean, externalUserId?: string, dropped?: boolean): void {
  logEvent('presence', { attendeeId, present, externalUserId: externalUserId ?? null, dropped: Boolean(dropped) });
  const existing = roster.get(attendeeId);
  roster.set(attendeeId, {
    attendeeId,
    externalUserId: externalUserId ?? existing?.externalUserId ?? null,
    present,
    dropped: Boolean(dropped),
    volume: existing?.volume ?? null,
    muted: existing?.muted ?? null,
    signalStrength: existing?.signalStrength ?? null,
    updatedAt: Date.now(),
  });
  if (!audioVideo) return;
  if (present && !volumeSubscribed.has(attendeeId)) {
    volumeSubscribed.add(attendeeId);
    audioVideo.realtimeSubscribeToVolumeIndicator(attendeeId, volumeCallback);
  } else if (!present && volumeSubscribed.has(attendeeId)) {
    volumeSubscribed.delete(attendeeId);
    audioVideo.realtimeUnsubscribeFromVolumeIndicator(attendeeId, volumeCallback);
  }
}

function dataCallback(message: DataMessage): void {
  const entry: ReceivedDataMessage = {
    topic: message.topic,
    text: message.text(),
    senderAttendeeId: message.senderAttendeeId,
    senderExternalUserId: message.senderExternalUserId,
    timestampMs: message.timestampMs,
    throttled: message.throttled,
  };
  received.push(entry);
  logEvent('dataMessage', entry);
}

/** Attributes every SDK event repeats (who, which browser); left out of the log. */
const STATIC_EVENT_ATTRIBUTES = new Set([
  'attendeeId',
  'browserMajorVersion',
  'browserName',
  'browserVersion',
  'deviceName',
  'externalMeetingId',
  'externalUserId',
  'meetingId',
  'osName',
  'osVersion',
  'sdkVersion',
  'sdkName',
  'timestampMs',
]);

function sdkEventObserver(name: string, attributes: EventAttributes): void {
  const detail: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(attributes as Record<string, unknown>)) {
    if (!STATIC_EVENT_ATTRIBUTES.has(key) && ['string', 'number', 'boolean'].includes(typeof value)) detail[key] = value;
  }
  logEvent('sdkEvent', { name, ...detail });
}

// ---------------------------------------------------------------- tone generation

async function makeToneStream(frequency: number | null, gain: number): Promise<MediaStream> {
  toneContext ??= new AudioContext({ sampleRate: 48_000 });
  if (toneContext.state !== 'running') await toneContext.resume();
  toneOscillator?.stop();
  toneOscillator?.disconnect();
  toneGain?.disconnect();
  toneLevel = gain;
  const oscillator = toneContext.createOscillator();
  oscillator.type = 'sine';
  oscillator.frequency.value = frequency ?? 440;
  const gainNode = toneContext.createGain();
  gainNode.gain.value = frequency === null ? 0 : gain;
  const destination = toneContext.createMediaStreamDestination();
  oscillator.connect(gainNode);
  gainNode.connect(destination);
  oscillator.start();
  toneOscillator = oscillator;
  toneGain = gainNode;
  return destination.stream;
}

// ---------------------------------------------------------------- tone measurement

const FFT_SIZE = 8192;
const BAND_LOW_HZ = 50;
const BAND_HIGH_HZ = 8000;
const TONE_HALF_WIDTH_BINS = 2;
const LOCAL_SPAN_HZ = 150;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
let analysisContext: AudioContext | null = null;

const toDb = (power: number): number => (power > 0 ? Math.max(-200, 10 * Math.log10(power)) : -200);

/** An analyser on `stream`; a silent sink keeps the graph pulled regardless of the browser's automatic-pull rules. */
async function analyse(stream: MediaStream, fftSize: number) {
  analysisContext ??= new AudioContext({ sampleRate: 48_000 });
  const ctx = analysisContext;
  if (ctx.state !== 'running') await ctx.resume();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = fftSize;
  analyser.smoothingTimeConstant = 0;
  const sink = ctx.createGain();
  sink.gain.value = 0;
  source.connect(analyser);
  analyser.connect(sink);
  sink.connect(ctx.destination);
  const disconnect = () => {
    source.disconnect();
    analyser.disconnect();
    sink.disconnect();
  };
  return { ctx, analyser, disconnect };
}

/**
 * Resolves with Date.now() at the first moment `frequency` stands out of the received audio:
 * a short FFT (1024 samples, ~21 ms) polled every few milliseconds, for latency measurements.
 */
async function watchOnset(stream: MediaStream, frequency: number, timeoutMs: number): Promise<number> {
  const { ctx, analyser, disconnect } = await analyse(stream, 1024);
  const spectrum = new Float32Array(analyser.frequencyBinCount);
  const bin = Math.round((frequency * analyser.fftSize) / ctx.sampleRate);
  const deadline = performance.now() + timeoutMs;
  try {
    while (performance.now() < deadline) {
      analyser.getFloatFrequencyData(spectrum);
      const sorted = Array.from(spectrum).filter(Number.isFinite).sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)] ?? -200;
      const peak = Math.max(spectrum[bin - 1] ?? -200, spectrum[bin]!, spectrum[bin + 1] ?? -200);
      if (peak > -70 && peak - median > 30) return Date.now();
      await sleep(3);
    }
    throw new Error(`toneOnset: no ${frequency} Hz within ${timeoutMs} ms`);
  } finally {
    disconnect();
  }
}

async function measureStream(stream: MediaStream, frequencies: number[], ms: number): Promise<ToneMeasurement> {
  if (stream.getAudioTracks().length === 0) throw new Error('the stream has no audio track');
  const { ctx, analyser, disconnect } = await analyse(stream, FFT_SIZE);
  const bins = analyser.frequencyBinCount;
  const power = new Float64Array(bins);
  const spectrum = new Float32Array(bins);
  const samples = new Float32Array(FFT_SIZE);
  let snapshots = 0;
  let sumSquares = 0;
  let sampleCount = 0;
  try {
    // Let the analyser's buffer fill with this stream's audio first.
    await sleep(Math.ceil((FFT_SIZE / ctx.sampleRate) * 1000) + 30);
    const windowMs = Math.min(Math.max(ms, 100), 30_000);
    const end = performance.now() + windowMs;
    do {
      analyser.getFloatFrequencyData(spectrum);
      for (let i = 0; i < bins; i++) {
        const db = spectrum[i]!;
        power[i]! += Number.isFinite(db) ? 10 ** (db / 10) : 0;
      }
      analyser.getFloatTimeDomainData(samples);
      for (const v of samples) sumSquares += v * v;
      sampleCount += samples.length;
      snapshots++;
      await sleep(40);
    } while (performance.now() < end);
  } finally {
    disconnect();
  }
  const binHz = ctx.sampleRate / FFT_SIZE;
  const average = Array.from(power, (p) => p / snapshots);
  const low = Math.max(1, Math.floor(BAND_LOW_HZ / binHz));
  const high = Math.min(bins - 1, Math.ceil(BAND_HIGH_HZ / binHz));
  const band = average.slice(low, high + 1).map(toDb);
  const sorted = [...band].sort((a, b) => a - b);
  const noiseFloorDb = sorted[Math.floor(sorted.length / 2)] ?? -200;
  let peakIndex = 0;
  band.forEach((db, i) => {
    if (db > band[peakIndex]!) peakIndex = i;
  });
  const peakDb = band[peakIndex] ?? -200;
  const tones: ToneLevel[] = frequencies.map((frequency) => {
    const centre = Math.round(frequency / binHz);
    let best = 0;
    for (let i = Math.max(0, centre - TONE_HALF_WIDTH_BINS); i <= Math.min(bins - 1, centre + TONE_HALF_WIDTH_BINS); i++) {
      best = Math.max(best, average[i]!);
    }
    const levelDb = toDb(best);
    // The neighbourhood (±150 Hz, without the tone's own bins): codec noise clusters around strong tones, so a
    // global median alone would call opus artefacts next to a real tone "present".
    const span = Math.round(LOCAL_SPAN_HZ / binHz);
    const local: number[] = [];
    for (let i = Math.max(1, centre - span); i <= Math.min(bins - 1, centre + span); i++) {
      if (Math.abs(i - centre) > TONE_HALF_WIDTH_BINS + 2) local.push(toDb(average[i]!));
    }
    local.sort((a, b) => a - b);
    const localFloorDb = local[Math.floor(local.length / 2)] ?? noiseFloorDb;
    const snrDb = levelDb - noiseFloorDb;
    const localSnrDb = levelDb - localFloorDb;
    const present = snrDb >= 20 && localSnrDb >= 15 && levelDb >= Math.max(-90, peakDb - 40);
    return { frequency, levelDb, snrDb, localSnrDb, relativeDb: levelDb - peakDb, present };
  });
  return {
    tones,
    noiseFloorDb,
    peakFrequency: (low + peakIndex) * binHz,
    peakDb,
    rmsDb: toDb(sampleCount ? sumSquares / sampleCount : 0),
    snapshots,
    sampleRate: ctx.sampleRate,
    binHz,
  };
}

// ---------------------------------------------------------------- stats

async function statsReport(): Promise<RTCStatsReport | null> {
  const av = requireAudioVideo();
  // Documented facade call (deprecated in favour of metricsDidReceive, but on-demand); returns null without a peer.
  const report = av.getRTCPeerConnectionStats() as Promise<RTCStatsReport> | null;
  return report ? await report : null;
}

const num = (value: unknown): number | null => (typeof value === 'number' ? value : null);

function codecOf(report: RTCStatsReport, stat: Record<string, unknown>): string | null {
  const codecId = str(stat.codecId);
  if (!codecId) return null;
  const codec = report.get(codecId) as Record<string, unknown> | undefined;
  return str(codec?.mimeType);
}

// ---------------------------------------------------------------- API

let contentTimer: ReturnType<typeof setInterval> | undefined;

// The page keeps the peer connections the SDK creates, to read per-packet receive data.
const peerConnections: RTCPeerConnection[] = [];
const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
  constructor(configuration?: RTCConfiguration) {
    super(configuration);
    peerConnections.push(this);
  }
} as typeof RTCPeerConnection;

/**
 * Resolves with Date.now() when the first audio packet louder than `minLevel` (linear, 0..1)
 * arrives: Chrome updates getSynchronizationSources() as packets are received, before the
 * jitter buffer, from the RFC 6464 level the server writes into each packet.
 */
async function watchArrival(minLevel: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    for (const pc of peerConnections) {
      for (const receiver of pc.getReceivers()) {
        if (receiver.track.kind !== 'audio') continue;
        for (const source of receiver.getSynchronizationSources()) {
          if ((source.audioLevel ?? 0) >= minLevel && source.timestamp > watchStartedAt) return Date.now();
        }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error(`audioArrival: no packet louder than ${minLevel} within ${timeoutMs} ms`);
}
let watchStartedAt = 0;

async function startCamera(): Promise<number> {
  const av = requireAudioVideo();
  const devices = await av.listVideoInputDevices();
  const device = devices.find((d) => d.deviceId)?.deviceId;
  await av.startVideoInput(device ?? { width: 640, height: 360 });
  const tileId = av.startLocalVideoTile();
  localVideo = true;
  logEvent('localCameraStarted', { tileId, device: device ?? null });
  return tileId;
}

async function startJoin(options: JoinOptions): Promise<ConfigurationSummary> {
  if (audioVideo && (state === 'connecting' || state === 'started')) throw new Error(`already joined (state ${state})`);
  const config = makeConfiguration(options.meeting, options.attendee, options.simulcast ?? false);
  if (options.config?.connectionTimeoutMs !== undefined) config.connectionTimeoutMs = options.config.connectionTimeoutMs;
  if (options.config?.reconnectTimeoutMs !== undefined) config.reconnectTimeoutMs = options.config.reconnectTimeoutMs;
  if (options.config?.attendeePresenceTimeoutMs !== undefined) {
    config.attendeePresenceTimeoutMs = options.config.attendeePresenceTimeoutMs;
  }
  configuration = config;
  roster.clear();
  volumeSubscribed.clear();
  latestVolumes.clear();
  currentActiveSpeakers = [];
  for (const video of tileElements.values()) video.remove();
  tileElements.clear();
  state = 'idle';
  lastStopStatus = null;
  promoted = false;
  localVideo = false;
  canStartLocalVideo = null;

  const logger = new ConsoleLogger(`amphi-${config.credentials?.externalUserId ?? 'page'}`, LogLevel[options.logLevel ?? 'INFO']);
  const deviceController = new DefaultDeviceController(logger);
  session = new DefaultMeetingSession(config, logger, deviceController);
  const av = session.audioVideo;
  audioVideo = av;
  av.addObserver(observer);
  session.eventController?.addObserver({ eventDidReceive: sdkEventObserver });
  av.realtimeSubscribeToAttendeeIdPresence(presenceCallback);
  av.realtimeSubscribeToMuteAndUnmuteLocalAudio((muted) => {
    localMuted = muted;
    logEvent('localMute', { muted });
  });
  av.realtimeSubscribeToFatalError((error) => logEvent('fatalError', String(error)));
  av.subscribeToActiveSpeakerDetector(new DefaultActiveSpeakerPolicy(), (speakers) => {
    currentActiveSpeakers = [...speakers];
    logEvent('activeSpeakers', { attendeeIds: currentActiveSpeakers });
  });
  for (const topic of dataTopics) av.realtimeSubscribeToReceiveDataMessage(topic, dataCallback);

  microphoneStream = options.tone
    ? await makeToneStream(options.tone.frequency, options.tone.gain ?? 0.25)
    : null;
  // A MediaStream is a valid AudioInputDevice; null makes the SDK use its own silent stream.
  const input = await av.startAudioInput(microphoneStream);
  if (!microphoneStream && input) microphoneStream = input;
  await av.bindAudioElement(audioElement);
  cameraOnStart = Boolean(options.camera);
  localMuted = av.realtimeIsLocalAudioMuted();
  state = 'connecting';
  logEvent('join', { attendeeId: config.credentials?.attendeeId ?? null, signalingURL: config.urls?.signalingURL ?? null });
  av.start();
  return summarize(config);
}

async function join(options: JoinOptions): Promise<ConfigurationSummary> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS;
  const started = awaitEvent(
    (e) => (e.name === 'audioVideoDidStart' ? 'resolve' : e.name === 'audioVideoDidStop' ? 'reject' : undefined),
    timeoutMs,
    'join',
  );
  started.catch(() => {}); // startJoin may throw first
  const summary = await startJoin(options);
  await started;
  return summary;
}

async function leave(timeoutMs = 10_000): Promise<string | null> {
  const av = audioVideo;
  if (!av || state === 'idle' || state === 'stopped') return lastStopStatus;
  const stopped = awaitEvent((e) => (e.name === 'audioVideoDidStop' ? 'resolve' : undefined), timeoutMs, 'leave');
  av.stop();
  await stopped;
  await Promise.race([Promise.allSettled([av.stopVideoInput(), av.stopAudioInput()]), sleep(2_000)]);
  localVideo = false;
  return lastStopStatus;
}

function credentialsFrom(response: AttendeeResponse): MeetingSessionCredentials {
  const attendee = field(response, 'Attendee') ?? response;
  const credentials = new MeetingSessionCredentials();
  credentials.attendeeId = str(field(attendee, 'AttendeeId'));
  credentials.externalUserId = str(field(attendee, 'ExternalUserId'));
  credentials.joinToken = str(field(attendee, 'JoinToken'));
  if (!credentials.attendeeId || !credentials.joinToken) throw new Error('promote: pass { Attendee } from CreateAttendee on the primary');
  return credentials;
}

const api: AmphiPageApi = {
  ready: true,

  async info() {
    return { sdkVersion: Versioning.sdkVersion, userAgent: navigator.userAgent, origin: location.origin };
  },

  async buildConfiguration(meeting, attendee, simulcast) {
    return summarize(makeConfiguration(meeting, attendee, simulcast ?? false));
  },

  startJoin,
  join,
  leave,

  async mute() {
    requireAudioVideo().realtimeMuteLocalAudio();
  },
  async unmute() {
    return requireAudioVideo().realtimeUnmuteLocalAudio();
  },

  async setTone(frequency) {
    if (!toneOscillator || !toneGain || !toneContext) throw new Error('setTone: join with a tone first');
    if (frequency === null) toneGain.gain.setValueAtTime(0, toneContext.currentTime);
    else {
      toneOscillator.frequency.setValueAtTime(frequency, toneContext.currentTime);
      toneGain.gain.setValueAtTime(toneLevel, toneContext.currentTime);
    }
    logEvent('tone', { frequency });
  },

  startCamera,
  async stopCamera() {
    const av = requireAudioVideo();
    av.stopLocalVideoTile();
    await av.stopVideoInput();
    localVideo = false;
    logEvent('localCameraStopped');
  },

  async startContentShare() {
    // A drawn canvas stands in for a shared screen: the SDK opens its second connection as <attendeeId>#content.
    const canvas = document.createElement('canvas');
    canvas.width = 640;
    canvas.height = 360;
    const context = canvas.getContext('2d')!;
    let frame = 0;
    contentTimer = setInterval(() => {
      context.fillStyle = `hsl(${(frame++ * 7) % 360}, 70%, 50%)`;
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.fillStyle = '#fff';
      context.font = '48px sans-serif';
      context.fillText(`slide ${frame}`, 40, 80);
    }, 66);
    await requireAudioVideo().startContentShare(canvas.captureStream(15));
    logEvent('contentShareStarted');
  },
  async stopContentShare() {
    requireAudioVideo().stopContentShare();
    clearInterval(contentTimer);
    logEvent('contentShareStopped');
  },

  async promote(response) {
    const status = await requireAudioVideo().promoteToPrimaryMeeting(credentialsFrom(response));
    const name = statusName(status);
    promoted = status.statusCode() === MeetingSessionStatusCode.OK;
    logEvent('promoteResult', { code: status.statusCode(), name });
    return name;
  },
  async demote() {
    requireAudioVideo().demoteFromPrimaryMeeting();
    promoted = false;
  },

  async subscribeData(topic) {
    if (dataTopics.has(topic)) return;
    dataTopics.add(topic);
    audioVideo?.realtimeSubscribeToReceiveDataMessage(topic, dataCallback);
  },
  async sendData(topic, text, lifetimeMs) {
    requireAudioVideo().realtimeSendDataMessage(topic, text, lifetimeMs);
    logEvent('dataMessageSent', { topic, text });
  },
  async receivedData() {
    return received.map((m) => ({ ...m }));
  },

  async roster() {
    return [...roster.values()].map((e) => ({ ...e }));
  },
  async volumes() {
    return [...latestVolumes.values()].map((e) => ({ ...e }));
  },
  async activeSpeakers() {
    return [...currentActiveSpeakers];
  },

  async videoTiles() {
    const av = requireAudioVideo();
    const report = await statsReport();
    const inbound: Record<string, unknown>[] = [];
    report?.forEach((stat: Record<string, unknown>) => {
      if (stat.type === 'inbound-rtp' && stat.kind === 'video') inbound.push(stat);
    });
    return av.getAllRemoteVideoTiles().map((tile): VideoTileInfo => {
      const state = tile.state();
      const video = state.tileId === null ? undefined : tileElements.get(state.tileId);
      const track = state.boundVideoStream?.getVideoTracks()[0] ?? null;
      const stat = track ? inbound.find((s) => s.trackIdentifier === track.id) : undefined;
      return {
        tileId: state.tileId ?? -1,
        boundAttendeeId: state.boundAttendeeId,
        boundExternalUserId: state.boundExternalUserId,
        active: state.active,
        paused: state.paused,
        streamId: state.streamId,
        groupId: state.groupId,
        videoWidth: video?.videoWidth ?? 0,
        videoHeight: video?.videoHeight ?? 0,
        framesDecoded: num(stat?.framesDecoded),
        frameWidth: num(stat?.frameWidth),
        frameHeight: num(stat?.frameHeight),
        packetsReceived: num(stat?.packetsReceived),
        codec: stat && report ? codecOf(report, stat) : null,
        trackId: track?.id ?? null,
      };
    });
  },

  async rtpStats() {
    const report = await statsReport();
    const result: RtpStat[] = [];
    report?.forEach((stat: Record<string, unknown>) => {
      if (stat.type !== 'inbound-rtp' && stat.type !== 'outbound-rtp') return;
      const inbound = stat.type === 'inbound-rtp';
      result.push({
        type: stat.type,
        kind: str(stat.kind) ?? '',
        ssrc: num(stat.ssrc) ?? 0,
        mid: str(stat.mid),
        rid: str(stat.rid),
        trackIdentifier: str(stat.trackIdentifier),
        packets: num(inbound ? stat.packetsReceived : stat.packetsSent) ?? 0,
        bytes: num(inbound ? stat.bytesReceived : stat.bytesSent) ?? 0,
        framesDecoded: num(stat.framesDecoded),
        framesEncoded: num(stat.framesEncoded),
        frameWidth: num(stat.frameWidth),
        frameHeight: num(stat.frameHeight),
        audioLevel: num(stat.audioLevel),
        jitterBufferDelayMs: inbound && num(stat.jitterBufferEmittedCount) ? ((num(stat.jitterBufferDelay) ?? 0) * 1000) / num(stat.jitterBufferEmittedCount)! : null,
        jitterBufferTargetDelayMs: inbound && num(stat.jitterBufferEmittedCount) ? ((num(stat.jitterBufferTargetDelay) ?? 0) * 1000) / num(stat.jitterBufferEmittedCount)! : null,
        jitterMs: inbound ? (num(stat.jitter) ?? 0) * 1000 : null,
        codec: report ? codecOf(report, stat) : null,
        recovery: {
          packetsLost: inbound ? num(stat.packetsLost) : null,
          nackCount: num(stat.nackCount),
          pliCount: num(stat.pliCount),
          firCount: num(stat.firCount),
          retransmittedPackets: num(inbound ? stat.retransmittedPacketsReceived : stat.retransmittedPacketsSent),
          framesDropped: num(stat.framesDropped),
          freezeCount: num(stat.freezeCount),
          totalFreezesDurationS: num(stat.totalFreezesDuration),
          totalSamplesReceived: num(stat.totalSamplesReceived),
          concealedSamples: num(stat.concealedSamples),
          silentConcealedSamples: num(stat.silentConcealedSamples),
          concealmentEvents: num(stat.concealmentEvents),
          fecPacketsReceived: num(stat.fecPacketsReceived),
        },
      });
    });
    return result;
  },

  async selectedCandidatePair() {
    const report = await statsReport();
    if (!report) return null;
    let pair: Record<string, unknown> | undefined;
    report.forEach((stat: Record<string, unknown>) => {
      if (stat.type === 'transport' && str(stat.selectedCandidatePairId)) pair = report.get(str(stat.selectedCandidatePairId)!);
    });
    if (!pair) return null;
    const local = report.get(str(pair.localCandidateId) ?? '') as Record<string, unknown> | undefined;
    const remote = report.get(str(pair.remoteCandidateId) ?? '') as Record<string, unknown> | undefined;
    return {
      localCandidateType: str(local?.candidateType),
      localRelayProtocol: str(local?.relayProtocol),
      localAddress: str(local?.address),
      remoteAddress: str(remote?.address),
      remotePort: num(remote?.port),
      bytesSent: num(pair.bytesSent) ?? 0,
      bytesReceived: num(pair.bytesReceived) ?? 0,
    };
  },

  async audioArrival(minLevel, timeoutMs) {
    watchStartedAt = performance.timeOrigin + performance.now();
    return watchArrival(minLevel, timeoutMs);
  },
  async toneOnset(frequency, timeoutMs) {
    const stream = audioElement.srcObject instanceof MediaStream ? audioElement.srcObject : null;
    if (!stream) throw new Error('toneOnset: no remote audio stream is bound to the <audio> element yet');
    return watchOnset(stream, frequency, timeoutMs);
  },
  async measureTones(frequencies, ms) {
    const bound = audioElement.srcObject instanceof MediaStream ? audioElement.srcObject : null;
    const stream = bound ?? (audioVideo ? await audioVideo.getCurrentMeetingAudioStream() : null);
    if (!stream) throw new Error('measureTones: no remote audio stream is bound to the <audio> element yet');
    return measureStream(stream, frequencies, ms);
  },

  async measureLocalTones(frequencies, ms) {
    if (!microphoneStream) throw new Error('measureLocalTones: no microphone stream; join or startJoin first');
    return measureStream(microphoneStream, frequencies, ms);
  },

  async events(sinceSeq = 0) {
    return eventLog.filter((e) => e.seq > sinceSeq);
  },

  async status(): Promise<PageStatus> {
    return {
      state,
      lastStopStatus,
      reconnecting,
      localMuted,
      promoted,
      localVideo,
      canStartLocalVideo,
      config: configuration ? summarize(configuration) : null,
    };
  },

  async webSockets() {
    return webSocketRecords.map((r) => ({ ...r, protocols: [...r.protocols] }));
  },
};

(window as unknown as { amphi: AmphiPageApi }).amphi = api;
logEvent('pageReady', { sdkVersion: Versioning.sdkVersion });
