import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import { ConnectionCloser } from './api/connection-closer.ts';
import { refuseUpgrade } from './api/refuse-upgrade.ts';
import { buildApi, DRAIN_RETRY_AFTER_SECONDS } from './api/server.ts';
import { BridgeConnector } from './bridge/bridge-connector.ts';
import { BridgeServer } from './bridge/bridge-server.ts';
import { SigV4Verifier, type AccessKey } from './api/sigv4.ts';
import { Throttle } from './api/throttle.ts';
import { EmbeddedNodeDirectory, RedisNodeDirectory, type LocalNodeDescription, type NodeDirectory } from './cluster/node-directory.ts';
import type { NodeRegistryOptions } from './cluster/node-registry.ts';
import { connectCluster, type ClusterState } from './cluster-state.ts';
import type { AmphiConfig } from './config.ts';
import { resolveAccessKeys } from './credentials.ts';
import { Demo } from './demo/demo.ts';
import { MeetingActivity } from './meetings/activity.ts';
import { DEFAULT_LIFECYCLE, MeetingLifecycle, type LifecycleOptions } from './meetings/lifecycle.ts';
import { LocalMeetingEventBus } from './meetings/local-event-bus.ts';
import { LocalTokenRevocations } from './meetings/local-revocations.ts';
import { MeetingService } from './meetings/service.ts';
import { MediaCluster } from './cluster/media-cluster.ts';
import { NodeMetrics } from './metrics/node-metrics.ts';
import { SignalingGateway } from './signaling/gateway.ts';
import { TurnCredentialIssuer } from './signaling/turn-credentials.ts';
import { FileStore } from './store/file-store.ts';
import type { MeetingStore } from './meetings/meeting-store.ts';
import { systemClock, type Clock } from './util/clock.ts';
import { forwardMeetingEvents } from './webhooks/meeting-events.ts';
import { WebhookSender, type WebhookDeliveryOptions } from './webhooks/webhook-sender.ts';

export interface StartOptions {
  /** Drives meeting ages and idle timers (tests move it by hand); signatures always use real time. */
  clock?: Clock;
  /** The embedded node's store (default: a FileStore in the data directory); cluster mode uses Redis. */
  store?: MeetingStore;
  logger?: Logger;
  lifecycle?: Partial<LifecycleOptions>;
  /** Cluster mode: how often this node says it is alive, and after how long a silent node is dead (tests shorten them). */
  nodeRegistry?: Partial<Pick<NodeRegistryOptions, 'heartbeatMs' | 'deadAfterMs'>>;
  /** How long close() lets API calls in flight finish before cutting their connections (default 5 s). */
  inFlightLimitMs?: number;
  /** Retry and queue settings of the meeting event webhooks (tests shorten the waits). */
  webhooks?: Partial<WebhookDeliveryOptions>;
  /** How often the media workers look for clients that stopped sending (default 5 s: dropped after 10–15 s); tests shorten it. */
  mediaSilenceCheckMs?: number;
}

/** API calls still running when the node closes get this long to finish; a sound call takes milliseconds. */
export const DEFAULT_IN_FLIGHT_LIMIT_MS = 5_000;

export interface Amphi {
  /** Where the API listens, e.g. http://127.0.0.1:8080 */
  url: string;
  /** The address the API is bound to: 127.0.0.1 with development keys unless a host was given. */
  listenAddress: string;
  publicUrl: string;
  accessKeys: AccessKey[];
  generatedKeys: boolean;
  service: MeetingService;
  lifecycle: MeetingLifecycle;
  signaling: SignalingGateway;
  media: MediaCluster;
  /** Where this node reports meeting and attendee activity (the meeting lifecycle events). */
  activity: MeetingActivity;
  /** The meeting event webhooks' sender, when --webhook-url is set. */
  webhooks: WebhookSender | undefined;
  /** The webinar demo, when on (--demo; by default with development keys); its page is at the public URL's `/`. */
  demo: Demo | undefined;
  /** The media nodes: this one, the live others (cluster mode), placement of new meetings. */
  nodes: NodeDirectory;
  /** A secret every node of the cluster holds (the first configured secret access key): node-to-node authentication. */
  clusterSecret: string;
  logger: Logger;
  /**
   * Starts the grace period of a shutdown: new API calls, /healthz and new WebSocket upgrades get 503 with
   * Retry-After (load balancers move away), answers carry `Connection: close`, and a node of a cluster leaves the
   * node registry so no new meeting is placed here. Calls and sessions already running go on.
   */
  drain(): void;
  /**
   * Stops the node: no new connections, idle ones closed, calls in flight finished (cut after `inFlightLimitMs`),
   * conferences ended with 503 (the SDK reconnects), media workers and the store closed. Drains first if not yet.
   */
  close(): Promise<void>;
}

/**
 * Assembles and starts one Amphi node: store, domain, lifecycle timers and the HTTP API. Without a Redis URL it is
 * the embedded single node (a FileStore, in-process events and revocations, every region hosted here); with one it
 * is a node of a cluster, sharing that state through Redis and announcing itself in the node registry.
 */
export async function startAmphi(config: AmphiConfig, options: StartOptions = {}): Promise<Amphi> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'amphi' } });
  if (!config.redisUrl && (config.nodeId || config.regions)) {
    logger.warn('--node-id and --regions apply to a node of a cluster (--redis-url); the embedded node hosts every region');
  }
  const cluster = config.redisUrl ? await connectCluster(config, config.redisUrl, logger, options.nodeRegistry) : undefined;
  try {
    return await assemble(config, options, clock, logger, cluster);
  } catch (error) {
    await cluster?.store.close();
    await cluster?.disconnect();
    throw error;
  }
}

async function assemble(config: AmphiConfig, options: StartOptions, clock: Clock, logger: Logger, cluster: ClusterState | undefined): Promise<Amphi> {
  const { keys, generated } = cluster ? { keys: cluster.keys, generated: cluster.generatedKeys } : resolveAccessKeys(config);
  // Development keys are for this machine: unless told otherwise, so is the listening address.
  const host = config.host ?? (generated ? '127.0.0.1' : '0.0.0.0');
  const store = cluster?.store ?? options.store ?? (await FileStore.open(config.dataDir, { fsync: config.journalFsync, logger }));
  // The node's URL and (default) id depend on the port actually bound (port 0), so they are filled in after listen,
  // before any request can ask for them.
  const local = {
    id: config.nodeId ?? (config.port === 0 ? undefined : `${hostname()}:${config.port}`),
    publicUrl: config.publicUrl ?? 'http://127.0.0.1',
    internalUrl: 'http://127.0.0.1',
    /** The node's load: its signaling sessions, once the gateway exists. */
    sessions: () => 0,
  };
  const describeLocal: LocalNodeDescription = () => ({
    id: local.id ?? 'unbound',
    publicUrl: local.publicUrl,
    internalUrl: local.internalUrl,
    mediaAddress: config.rtcAnnouncedIp,
    regions: config.regions ?? '*',
    sessions: local.sessions(),
  });
  const nodes: NodeDirectory = cluster
    ? new RedisNodeDirectory(cluster.registry, describeLocal, { cacheMs: cluster.registryOptions.heartbeatMs })
    : new EmbeddedNodeDirectory(describeLocal);
  const activity = new MeetingActivity();
  const service = new MeetingService(
    {
      store,
      activity,
      events: cluster?.events ?? new LocalMeetingEventBus(),
      revocations: cluster?.revocations ?? new LocalTokenRevocations(clock),
      clock,
      nodes,
      localPublicUrl: () => local.publicUrl,
    },
    {
      accountId: config.accountId,
      maxReplicasPerPrimary: config.maxReplicasPerPrimary,
      maxActiveMeetings: config.maxMeetings,
    },
  );
  // Each node sends the events of what it does: the API calls it answers, the sessions it hosts.
  const webhooks = config.webhookUrl
    ? new WebhookSender(config.webhookUrl, config.webhookSecret ?? '', logger.child({ component: 'webhooks' }), options.webhooks)
    : undefined;
  const stopEvents = webhooks ? forwardMeetingEvents(activity, (event) => webhooks.send(event), config.accountId, systemClock) : undefined;
  const lifecycle = new MeetingLifecycle(service, clock, nodes, { ...DEFAULT_LIFECYCLE, ...options.lifecycle });
  service.events.subscribe('meetingEnded', (meeting, reason) =>
    logger.info({ meetingId: meeting.MeetingId, reason }, 'meeting ended'),
  );

  const state = { draining: false };
  const turn = new TurnCredentialIssuer({ uris: config.turnUris ?? [], secret: config.turnSecret, ttlSeconds: config.turnTtl });
  const metrics = config.metrics ? new NodeMetrics() : undefined;
  const api = buildApi({
    turn,
    state,
    service,
    verifier: new SigV4Verifier(keys, systemClock),
    throttle: new Throttle(config.apiRateLimit, systemClock),
    logger,
    health: () => ({ node: nodes.localNodeId, sessions: signaling.sessionCount }),
    requests: metrics?.api,
    metrics: metrics && (() => metrics.render()),
  });
  // The demo's API calls go to this node's own API, at the address it listens on (known after listen).
  let apiUrl = '';
  const demo = (config.demo ?? generated)
    ? new Demo({
        app: api,
        apiUrl: () => apiUrl,
        key: keys[0]!,
        limits: { seatsPerReplica: config.demoSeatsPerReplica, replicaQuota: config.maxReplicasPerPrimary },
        events: service.events,
        logger: logger.child({ component: 'demo' }),
      })
    : undefined;
  const connections = new ConnectionCloser(api.server);
  // What has been started so far, stopped in reverse order if a later step fails, so that a failed start leaves
  // nothing running (a media worker left behind would keep the process alive). Redis parts are startAmphi's.
  const started: Array<() => unknown> = cluster ? [] : [() => store.close()];
  const giveUp = async (error: unknown): Promise<never> => {
    for (const stop of started.reverse()) {
      await Promise.resolve()
        .then(stop)
        .catch((stopError: unknown) => logger.warn({ err: stopError }, 'could not stop a part of a start that failed'));
    }
    throw error;
  };
  const listenIp = host === '::' ? '0.0.0.0' : host;
  const media = await MediaCluster.start(
    { workers: config.mediaWorkers, listenIp, basePort: config.rtcPort, announcedIp: config.rtcAnnouncedIp, logLevel: config.logLevel, silenceCheckMs: options.mediaSilenceCheckMs },
    logger.child({ component: 'media' }),
  ).catch((error: unknown) => {
    // Worker i binds rtcPort + i: name the port the failing bind reported.
    const busyPort = /EADDRINUSE \S*:(\d+)/.exec(String((error as Error | undefined)?.message))?.[1] ?? config.rtcPort;
    return giveUp(startFailure('start the media workers', error, `UDP port ${busyPort}`, '--rtc-port / AMPHI_RTC_PORT'));
  });
  started.push(() => media.close());
  const pipeAddress = listenIp === '0.0.0.0' ? '127.0.0.1' : listenIp;
  // Nodes prove themselves to each other with the secret of the access keys they share.
  const clusterSecret = keys[0]!.secretAccessKey;
  const remotePrimaries = new BridgeConnector({
    secret: clusterSecret,
    mediaAddress: config.rtcAnnouncedIp,
    nodes,
    clock: systemClock,
    logger: logger.child({ component: 'bridge' }),
  });
  const signaling = new SignalingGateway({
    meetings: service,
    connections: lifecycle,
    media,
    nodes,
    // Signaling paces itself with real timers, so it reads real time (the given clock drives meeting rules).
    clock: systemClock,
    logger: logger.child({ component: 'signaling' }),
    pipeAddress,
    remotePrimaries,
    maxSocketsPerAddress: config.maxSocketsPerAddress,
    turn,
    metrics: metrics?.conferences,
  });
  metrics?.observe({ conferences: () => signaling.liveConferences(), workers: media.workers });
  const bridges = new BridgeServer(
    { meetings: service, clock: systemClock, openPrimary: (meetingId) => signaling.openLocalPrimary(meetingId) },
    clusterSecret,
    logger.child({ component: 'bridge' }),
  );
  started.push(() => signaling.close(), () => bridges.close());
  api.server.on('upgrade', (request, socket, head) => {
    // Draining: sessions already open go on, new ones are sent elsewhere (the SDK retries on 503).
    if (state.draining) refuseUpgrade(socket, 503, { 'Retry-After': String(DRAIN_RETRY_AFTER_SECONDS) });
    else if (bridges.handles(request)) bridges.upgrade(request, socket, head);
    else signaling.handleUpgrade(request, socket, head);
  });
  local.sessions = () => signaling.sessionCount;
  await api
    .listen({ host, port: config.port })
    .catch((error: unknown) => giveUp(startFailure('listen for the API', error, `TCP port ${config.port} on ${host}`, '--port / AMPHI_PORT')));
  started.push(() => api.close());
  const { port, address: listenAddress } = api.server.address() as AddressInfo;
  const listenHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url = `http://${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`;
  apiUrl = url;
  const publicUrl = (config.publicUrl ?? url).replace(/\/+$/, '');
  local.publicUrl = publicUrl;
  // Other nodes reach this one where they reach its media, unless it listens on one address only.
  const reachableHost = host === '0.0.0.0' || host === '::' ? config.rtcAnnouncedIp : host;
  local.internalUrl = `http://${reachableHost.includes(':') ? `[${reachableHost}]` : reachableHost}:${port}`;
  local.id ??= `${hostname()}:${port}`;
  if (cluster) {
    try {
      if ((await cluster.registry.liveNodes()).some((node) => node.id === local.id)) {
        logger.warn({ nodeId: local.id }, 'a live node already has this id: node ids must be unique (or this node restarted within the dead-after delay)');
      }
      // Taken for dead while cut off: its meetings may have been re-homed meanwhile, and are hosted once.
      cluster.registry.on('rejoined', () => {
        signaling.endMovedConferences().catch((error: unknown) => logger.warn({ err: error }, 'could not check for re-homed meetings'));
      });
      await cluster.registry.join(describeLocal);
    } catch (error) {
      await giveUp(error);
    }
    logger.info({ nodeId: local.id, regions: config.regions ?? 'any' }, 'joined the cluster');
  }
  lifecycle.start();

  let leaving: Promise<void> | undefined;
  // Leaving first stops the other nodes placing meetings here while this one winds down.
  const leaveCluster = () =>
    (leaving ??= cluster
      ? cluster.registry.leave(nodes.localNodeId).catch((error: unknown) => logger.warn({ err: error }, 'could not leave the cluster'))
      : Promise.resolve());
  const drain = () => {
    state.draining = true;
    void leaveCluster();
  };
  let closing: Promise<void> | undefined;
  return {
    url,
    listenAddress,
    publicUrl,
    accessKeys: keys,
    generatedKeys: generated,
    service,
    lifecycle,
    signaling,
    media,
    activity,
    webhooks,
    demo,
    nodes,
    clusterSecret,
    logger,
    drain,
    close: () =>
      (closing ??= (async () => {
        drain();
        lifecycle.stop();
        await leaveCluster();
        bridges.close();
        signaling.close();
        // Its event streams would otherwise hold their connections open until the in-flight limit.
        demo?.close();
        const inFlightLimitMs = options.inFlightLimitMs ?? DEFAULT_IN_FLIGHT_LIMIT_MS;
        const { cut } = await connections.close(() => api.close(), inFlightLimitMs);
        if (cut > 0) logger.warn({ connections: cut, inFlightLimitMs }, 'connections still open after the in-flight limit were cut');
        stopEvents?.();
        await webhooks?.close();
        await media.close();
        await store.close();
        await cluster?.disconnect();
      })()),
  };
}

/** A start step that failed, said in an operator's words: what could not be done, and which setting to change. */
function startFailure(step: string, error: unknown, resource: string, setting: string): Error {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'EADDRINUSE' || /EADDRINUSE/.test(message)) {
    return new Error(`could not ${step}: ${resource} is already in use by another process (choose another with ${setting})`, { cause: error });
  }
  return new Error(`could not ${step}: ${message}`, { cause: error });
}
