import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { buildApi } from './api/server.ts';
import { BridgeConnector } from './bridge/bridge-connector.ts';
import { BridgeServer } from './bridge/bridge-server.ts';
import { SigV4Verifier, type AccessKey } from './api/sigv4.ts';
import { Throttle } from './api/throttle.ts';
import type { NodeLocator } from './cluster/node-locator.ts';
import { Topology } from './cluster/topology.ts';
import type { AmphiConfig } from './config.ts';
import { resolveAccessKeys } from './credentials.ts';
import { DEFAULT_LIFECYCLE, MeetingLifecycle, type LifecycleOptions } from './meetings/lifecycle.ts';
import { LocalMeetingEventBus } from './meetings/local-event-bus.ts';
import { LocalTokenRevocations } from './meetings/local-revocations.ts';
import { MeetingService } from './meetings/service.ts';
import { MediaCluster } from './cluster/media-cluster.ts';
import { SignalingGateway } from './signaling/gateway.ts';
import { FileStore } from './store/file-store.ts';
import type { MeetingStore } from './meetings/meeting-store.ts';
import { systemClock, type Clock } from './util/clock.ts';

export interface StartOptions {
  /** Drives meeting ages and idle timers (tests move it by hand); signatures always use real time. */
  clock?: Clock;
  store?: MeetingStore;
  /** Media nodes and which one this process is (default: this process alone serves every region). */
  topology?: Topology;
  logger?: Logger;
  lifecycle?: Partial<LifecycleOptions>;
}

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
  logger: Logger;
  /** Refuses new API calls with 503 (load balancers see /healthz fail) while still running. */
  drain(): void;
  close(): Promise<void>;
}

/**
 * Assembles and starts one Amphi node: store, domain, lifecycle timers and the HTTP API. The state
 * nodes will share (store, event bus, token revocations) has its single-process implementations here.
 */
export async function startAmphi(config: AmphiConfig, options: StartOptions = {}): Promise<Amphi> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'amphi' } });
  const { keys, generated } = resolveAccessKeys(config);
  // Development keys are for this machine: unless told otherwise, so is the listening address.
  const host = config.host ?? (generated ? '127.0.0.1' : '0.0.0.0');
  const store = options.store ?? (await FileStore.open(config.dataDir, { fsync: config.journalFsync, logger }));
  // The public URL may depend on the port actually bound (port 0), so it is filled in after listen.
  const topology = options.topology ?? Topology.singleNode(config.publicUrl ?? 'http://127.0.0.1');
  const service = new MeetingService(
    { store, events: new LocalMeetingEventBus(), revocations: new LocalTokenRevocations(clock), clock, topology },
    {
      accountId: config.accountId,
      maxReplicasPerPrimary: config.maxReplicasPerPrimary,
      maxActiveMeetings: config.maxMeetings,
    },
  );
  const lifecycle = new MeetingLifecycle(service, clock, { ...DEFAULT_LIFECYCLE, ...options.lifecycle });
  service.events.subscribe('meetingEnded', (meeting, reason) =>
    logger.info({ meetingId: meeting.MeetingId, reason }, 'meeting ended'),
  );

  const state = { draining: false };
  const api = buildApi({
    state,
    service,
    verifier: new SigV4Verifier(keys, systemClock),
    throttle: new Throttle(config.apiRateLimit, systemClock),
    logger,
    health: () => ({ node: topology.localNodeId, sessions: signaling.sessionCount }),
  });
  const listenIp = host === '::' ? '0.0.0.0' : host;
  const media = await MediaCluster.start(
    { workers: config.mediaWorkers, listenIp, basePort: config.rtcPort, announcedIp: config.rtcAnnouncedIp, logLevel: config.logLevel },
    logger.child({ component: 'media' }),
  );
  const pipeAddress = listenIp === '0.0.0.0' ? '127.0.0.1' : listenIp;
  // Nodes prove themselves to each other with the secret of the access keys they share.
  const clusterSecret = keys[0]!.secretAccessKey;
  const nodes: NodeLocator = { internalUrlOf: async (nodeId) => topology.node(nodeId)?.publicUrl };
  const remotePrimaries = new BridgeConnector({
    localNodeId: topology.localNodeId,
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
    topology,
    // Signaling paces itself with real timers, so it reads real time (the given clock drives meeting rules).
    clock: systemClock,
    logger: logger.child({ component: 'signaling' }),
    pipeAddress,
    remotePrimaries,
    nodes,
    maxSocketsPerAddress: config.maxSocketsPerAddress,
  });
  const bridges = new BridgeServer(
    { meetings: service, clock: systemClock, openPrimary: (meetingId) => signaling.openLocalPrimary(meetingId) },
    clusterSecret,
    logger.child({ component: 'bridge' }),
  );
  api.server.on('upgrade', (request, socket, head) => {
    if (bridges.handles(request)) bridges.upgrade(request, socket, head);
    else signaling.handleUpgrade(request, socket, head);
  });
  await api.listen({ host, port: config.port });
  const { port, address: listenAddress } = api.server.address() as AddressInfo;
  const listenHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url = `http://${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`;
  const publicUrl = (config.publicUrl ?? url).replace(/\/+$/, '');
  topology.setLocalPublicUrl(publicUrl);
  lifecycle.start();

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
    logger,
    drain: () => {
      state.draining = true;
    },
    close: () =>
      (closing ??= (async () => {
        state.draining = true;
        lifecycle.stop();
        bridges.close();
        signaling.close();
        await api.close();
        await media.close();
        await store.close();
      })()),
  };
}
