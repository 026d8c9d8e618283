import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { AudioRelay } from './replication/audio-relay.ts';
import { PrimaryPipeEnd, ReplicaPipeEnd, type PipeEnd } from './replication/pipe-ends.ts';
import type { MediaPeer } from './media/sfu/peer.ts';
import type { MediaRoom } from './media/sfu/room.ts';
import { PipeTransport } from './media/transport/pipe-transport.ts';
import { MediaWorker } from './media/worker/media-worker.ts';
import type { WorkerCall, WorkerEvent, WorkerMethods, WorkerOptions } from './media/worker/protocol.ts';
import { ThreadLoad } from './media/worker/thread-load.ts';

/**
 * A media worker thread: its own UDP port, rooms and peers. It runs every per-packet path, so
 * the main thread (API, signaling) never competes with forwarding and mixing.
 *
 * This file is the thread's composition root: it builds a replica's room with a relay and its
 * pipe ends, and hands each to its parent. It keeps no index of its own: the worker finds rooms
 * by the id the main thread gave them, and rooms their peers and pipe ends (which leave them when
 * they close, whoever closed them).
 */
const options = workerData.options as WorkerOptions;
const logger = pino({ level: options.logLevel, base: { worker: options.name } });
const worker = await MediaWorker.start({
  listenIp: options.listenIp,
  port: options.port,
  announcedIp: options.announcedIp,
  logger,
  silenceCheckMs: options.silenceCheckMs,
});
/** This thread's CPU time and event-loop lag, for the metrics. */
const load = new ThreadLoad();
const port = parentPort!;
const post = (event: WorkerEvent) => port.postMessage(event);

/** A replica's room relays its primary's mix; every other room mixes its own. */
const isReplicaRoom = (candidate: MediaRoom): candidate is MediaRoom<AudioRelay> => candidate.mixer instanceof AudioRelay;
const roomById = (roomId: string): MediaRoom => {
  const found = worker.room(roomId);
  if (!found) throw new Error(`no room ${roomId}`);
  return found;
};
const primaryRoom = (roomId: string): MediaRoom => {
  const found = roomById(roomId);
  if (isReplicaRoom(found)) throw new Error(`room ${roomId} is a replica's: it has no primary pipe end`);
  return found;
};
const replicaRoom = (roomId: string): MediaRoom<AudioRelay> => {
  const found = roomById(roomId);
  if (!isReplicaRoom(found)) throw new Error(`room ${roomId} mixes its own audio: it has no replica pipe end`);
  return found;
};
const peer = (peerId: string): MediaPeer => {
  const found = worker.findPeer(peerId);
  if (!found) throw new Error(`no peer ${peerId}`);
  return found;
};
/** A pipe end of the given kind, as its room adopted it. */
const pipeEnd = <End extends PipeEnd>(pipeId: string, kind: abstract new (...args: never[]) => End, what: string): End => {
  const found = worker.findAdoptedPeer(pipeId);
  if (!(found instanceof kind)) throw new Error(`no ${what} ${pipeId}`);
  return found;
};
const anyPipeEnd = (pipeId: string): PipeEnd | undefined => {
  const found = worker.findAdoptedPeer(pipeId);
  return found instanceof PrimaryPipeEnd || found instanceof ReplicaPipeEnd ? found : undefined;
};
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
const toBuffers = (key: { key: Uint8Array; salt: Uint8Array }) => ({ key: Buffer.from(key.key), salt: Buffer.from(key.salt) });

/**
 * Binds the pipe's socket (the asynchronous part), then builds the end and hands it to its room
 * if the room is still open.
 */
async function openPipe<Room extends MediaRoom, End extends PipeEnd>(
  opened: Room,
  pipeId: string,
  build: (room: Room, transport: PipeTransport) => End,
): Promise<{ end: End; port: number }> {
  const transport = await PipeTransport.open(options.listenIp, worker.traffic);
  if (worker.room(opened.id) !== opened) {
    transport.close();
    throw new Error(`room ${opened.id} closed while its pipe opened`);
  }
  const end = build(opened, transport);
  try {
    opened.adopt(pipeId, end);
  } catch (error) {
    end.close();
    throw error;
  }
  return { end, port: transport.port };
}

const methods: WorkerMethods = {
  createRoom(roomId, replica) {
    if (replica) worker.createRelayedRoom(roomId, new AudioRelay());
    else worker.createRoom(roomId);
  },
  closeRoom(roomId) {
    worker.room(roomId)?.close();
  },
  createPeer(roomId, peerId, attendeeId) {
    const created = worker.createPeer(roomById(roomId), peerId, attendeeId);
    created.on('connectionChange', (connected) => post({ type: 'peerConnection', roomId, peerId, connected }));
    created.on('silent', () => post({ type: 'peerSilent', roomId, peerId }));
  },
  closePeer(peerId) {
    worker.findPeer(peerId)?.close();
  },
  negotiate: (peerId, input) => peer(peerId).negotiate(input),
  updateSubscriptions: (peerId, update) => peer(peerId).updateSubscriptions(update),
  setMuted: (peerId, muted) => peer(peerId).setMuted(muted),
  setPaused: (peerId, streamIds, paused) => peer(peerId).setPaused(streamIds, paused),
  applyCapabilities: (peerId, capabilities) => peer(peerId).applyCapabilities(capabilities),
  unpublish: (peerId) => peer(peerId).unpublish(),
  peerStats: (peerId) => worker.findPeer(peerId)?.stats(),
  async openPrimaryPipe(roomId, pipeId) {
    const { port } = await openPipe(primaryRoom(roomId), pipeId, (opened, transport) => new PrimaryPipeEnd(opened, transport));
    return port;
  },
  async openReplicaPipe(roomId, pipeId) {
    const { end, port } = await openPipe(replicaRoom(roomId), pipeId, (opened, transport) => new ReplicaPipeEnd(opened, transport));
    end.on('demand', (streamIds) => post({ type: 'pipeDemand', roomId, pipeId, streamIds }));
    return port;
  },
  connectPipe(pipeId, remote, keys) {
    const end = anyPipeEnd(pipeId);
    if (!end) throw new Error(`no pipe ${pipeId}`);
    end.connect(remote, { send: toBuffers(keys.send), receive: toBuffers(keys.receive) });
  },
  closePipe(pipeId) {
    anyPipeEnd(pipeId)?.close();
  },
  pipeStats: (pipeId) => anyPipeEnd(pipeId)?.stats(),
  primaryPipeSendStreams: (pipeId, streamIds) => pipeEnd(pipeId, PrimaryPipeEnd, 'primary pipe').sendStreams(streamIds),
  primaryPipeReceiveStreams: (pipeId, streams) => pipeEnd(pipeId, PrimaryPipeEnd, 'primary pipe').receiveStreams(streams),
  primaryPipePromote: (pipeId, slot, primaryAttendeeId) => pipeEnd(pipeId, PrimaryPipeEnd, 'primary pipe').promote(slot, primaryAttendeeId),
  primaryPipeDemote: (pipeId, slot) => pipeEnd(pipeId, PrimaryPipeEnd, 'primary pipe').demote(slot),
  replicaPipeSetStreams: (pipeId, streams) => pipeEnd(pipeId, ReplicaPipeEnd, 'replica pipe').setStreams(streams),
  replicaPipeSendStreams: (pipeId, streamIds) => pipeEnd(pipeId, ReplicaPipeEnd, 'replica pipe').sendStreams(streamIds),
  replicaPipePromote: (pipeId, slot, attendeeId) => pipeEnd(pipeId, ReplicaPipeEnd, 'replica pipe').promote(slot, attendeeId),
  replicaPipeDemote: (pipeId, attendeeId) => pipeEnd(pipeId, ReplicaPipeEnd, 'replica pipe').demote(attendeeId),
  workerStats: () => ({ ...worker.stats(), thread: load.snapshot() }),
  exit(exitCode) {
    setImmediate(() => {
      try {
        load.close();
        worker.close();
      } finally {
        process.exit(exitCode);
      }
    });
  },
};

// A call's effects happen as it arrives, in order; its answer goes back once any asynchronous part is done.
port.on('message', (call: WorkerCall) => {
  let result: unknown;
  try {
    result = Reflect.apply(methods[call.method], methods, call.args);
  } catch (error) {
    post({ type: 'result', id: call.id, error: messageOf(error) });
    return;
  }
  Promise.resolve(result).then(
    (answer) => post({ type: 'result', id: call.id, result: answer }),
    (error: unknown) => post({ type: 'result', id: call.id, error: messageOf(error) }),
  );
});

setInterval(() => {
  for (const open of worker.openRooms()) post({ type: 'levels', roomId: open.id, levels: [...open.audioLevels()] });
}, 200).unref();
setInterval(() => {
  for (const open of worker.openRooms()) post({ type: 'rates', roomId: open.id, bitrates: open.layerBitrates(), downlinks: open.downlinkEstimates() });
}, 1000).unref();

// The worker's packet rate, measured here off the packet path (two counters it adds to anyway), for placement.
let packetsCounted = 0;
let countedAt = performance.now();
setInterval(() => {
  const packets = worker.traffic.packetsSent + worker.traffic.packetsReceived;
  const now = performance.now();
  post({ type: 'load', packetsPerSecond: Math.round(((packets - packetsCounted) * 1000) / Math.max(1, now - countedAt)) });
  packetsCounted = packets;
  countedAt = now;
}, 1000).unref();

// The last line of defence: whatever escapes a handler is logged (once per burst), and the
// worker's other meetings go on.
process.on('uncaughtException', (error) => worker.reportFailure('uncaught', error, 'uncaught error in media worker'));
process.on('unhandledRejection', (error) => worker.reportFailure('unhandled rejection', error, 'unhandled rejection in media worker'));

post({ type: 'ready', port: worker.port });
