import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { AudioRelay } from '../../replication/audio-relay.ts';
import { PrimaryPipeEnd, ReplicaPipeEnd, type PipeEnd } from '../../replication/pipe-ends.ts';
import type { MediaPeer } from '../sfu/peer.ts';
import type { MediaRoom } from '../sfu/room.ts';
import { PipeTransport } from '../transport/pipe-transport.ts';
import { MediaWorker } from './media-worker.ts';
import type { WorkerCall, WorkerEvent, WorkerMethods, WorkerOptions } from './protocol.ts';

/**
 * A media worker thread: its own UDP port, rooms and peers. It runs every per-packet path, so
 * the main thread (API, signaling) never competes with forwarding and mixing.
 *
 * This file is the thread's composition root: it builds a replica's room with a relay and its
 * pipe ends, and finds each object by the id the main thread gave it. Objects leave these maps
 * when they close, whoever closed them (a room closes its peers and pipe ends).
 */
const options = workerData.options as WorkerOptions;
const logger = pino({ level: options.logLevel, base: { worker: options.name } });
const worker = await MediaWorker.start({ listenIp: options.listenIp, port: options.port, announcedIp: options.announcedIp, logger });
/** Rooms that mix their own audio, and replica rooms that relay their primary's. */
const rooms = new Map<string, MediaRoom>();
const replicaRooms = new Map<string, MediaRoom<AudioRelay>>();
const peers = new Map<string, { peer: MediaPeer; roomId: string }>();
const primaryEnds = new Map<string, PrimaryPipeEnd>();
const replicaEnds = new Map<string, ReplicaPipeEnd>();
const port = parentPort!;
const post = (event: WorkerEvent) => port.postMessage(event);

const find = <T>(map: Map<string, T>, id: string, what: string): T => {
  const found = map.get(id);
  if (found === undefined) throw new Error(`no ${what} ${id}`);
  return found;
};
const roomOf = (roomId: string): MediaRoom => rooms.get(roomId) ?? find(replicaRooms, roomId, 'room');
const peer = (peerId: string) => find(peers, peerId, 'peer').peer;
const pipeEnd = (pipeId: string): PipeEnd => primaryEnds.get(pipeId) ?? find(replicaEnds, pipeId, 'pipe');
/** Keeps `item` in `map` under `id` until it closes. */
const register = <T extends { once(event: 'closed', listener: () => void): unknown }>(map: Map<string, T>, id: string, item: T): T => {
  map.set(id, item);
  item.once('closed', () => {
    if (map.get(id) === item) map.delete(id);
  });
  return item;
};
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
const toBuffers = (key: { key: Uint8Array; salt: Uint8Array }) => ({ key: Buffer.from(key.key), salt: Buffer.from(key.salt) });

/** Binds the pipe's socket (the asynchronous part), then builds the end if its room is still there. */
async function openPipe<Room, End>(
  roomsOfKind: Map<string, Room>,
  roomId: string,
  build: (room: Room, transport: PipeTransport) => End,
): Promise<{ end: End; port: number }> {
  find(roomsOfKind, roomId, 'room of that kind');
  const transport = await PipeTransport.open(options.listenIp);
  const room = roomsOfKind.get(roomId);
  if (!room) {
    transport.close();
    throw new Error(`room ${roomId} closed while its pipe opened`);
  }
  return { end: build(room, transport), port: transport.port };
}

const methods: WorkerMethods = {
  createRoom(roomId, replica) {
    if (rooms.has(roomId) || replicaRooms.has(roomId)) throw new Error(`room ${roomId} exists`);
    if (replica) register(replicaRooms, roomId, worker.createRelayedRoom(roomId, new AudioRelay()));
    else register(rooms, roomId, worker.createRoom(roomId));
  },
  closeRoom(roomId) {
    (rooms.get(roomId) ?? replicaRooms.get(roomId))?.close();
  },
  createPeer(roomId, peerId, attendeeId) {
    const created = worker.createPeer(roomOf(roomId), attendeeId);
    created.on('connectionChange', (connected) => post({ type: 'peerConnection', roomId, peerId, connected }));
    peers.set(peerId, { peer: created, roomId });
    created.once('closed', () => peers.delete(peerId));
  },
  closePeer(peerId) {
    peers.get(peerId)?.peer.close();
  },
  negotiate: (peerId, input) => peer(peerId).negotiate(input),
  updateSubscriptions: (peerId, update) => peer(peerId).updateSubscriptions(update),
  setMuted: (peerId, muted) => peer(peerId).setMuted(muted),
  setPaused: (peerId, streamIds, paused) => peer(peerId).setPaused(streamIds, paused),
  applyCapabilities: (peerId, capabilities) => peer(peerId).applyCapabilities(capabilities),
  unpublish: (peerId) => peer(peerId).unpublish(),
  peerStats: (peerId) => peers.get(peerId)?.peer.stats(),
  async openPrimaryPipe(roomId, pipeId) {
    const { end, port } = await openPipe(rooms, roomId, (room, transport) => new PrimaryPipeEnd(room, transport));
    register(primaryEnds, pipeId, end);
    return port;
  },
  async openReplicaPipe(roomId, pipeId) {
    const { end, port } = await openPipe(replicaRooms, roomId, (room, transport) => new ReplicaPipeEnd(room, transport));
    register(replicaEnds, pipeId, end);
    end.on('demand', (streamIds) => post({ type: 'pipeDemand', roomId, pipeId, streamIds }));
    return port;
  },
  connectPipe: (pipeId, remote, keys) => pipeEnd(pipeId).connect(remote, { send: toBuffers(keys.send), receive: toBuffers(keys.receive) }),
  closePipe(pipeId) {
    (primaryEnds.get(pipeId) ?? replicaEnds.get(pipeId))?.close();
  },
  pipeStats: (pipeId) => (primaryEnds.get(pipeId) ?? replicaEnds.get(pipeId))?.stats(),
  primaryPipeSendStreams: (pipeId, streamIds) => find(primaryEnds, pipeId, 'primary pipe').sendStreams(streamIds),
  primaryPipeReceiveStreams: (pipeId, streams) => find(primaryEnds, pipeId, 'primary pipe').receiveStreams(streams),
  primaryPipePromote: (pipeId, slot, primaryAttendeeId) => find(primaryEnds, pipeId, 'primary pipe').promote(slot, primaryAttendeeId),
  primaryPipeDemote: (pipeId, slot) => find(primaryEnds, pipeId, 'primary pipe').demote(slot),
  replicaPipeSetStreams: (pipeId, streams) => find(replicaEnds, pipeId, 'replica pipe').setStreams(streams),
  replicaPipeSendStreams: (pipeId, streamIds) => find(replicaEnds, pipeId, 'replica pipe').sendStreams(streamIds),
  replicaPipePromote: (pipeId, slot, attendeeId) => find(replicaEnds, pipeId, 'replica pipe').promote(slot, attendeeId),
  replicaPipeDemote: (pipeId, attendeeId) => find(replicaEnds, pipeId, 'replica pipe').demote(attendeeId),
  workerStats: () => worker.stats(),
  exit(exitCode) {
    setImmediate(() => {
      try {
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
  for (const [roomId, room] of [...rooms, ...replicaRooms]) post({ type: 'levels', roomId, levels: [...room.audioLevels()] });
}, 200).unref();
setInterval(() => {
  for (const [roomId, room] of [...rooms, ...replicaRooms]) {
    const downlinks: [string, number][] = [];
    for (const [peerId, entry] of peers) if (entry.roomId === roomId) downlinks.push([peerId, entry.peer.estimatedDownlinkBps()]);
    post({ type: 'rates', roomId, bitrates: room.layerBitrates(), downlinks });
  }
}, 1000).unref();

// The last line of defence: whatever escapes a handler is logged (once per burst), and the
// worker's other meetings go on.
process.on('uncaughtException', (error) => worker.reportFailure('uncaught', error, 'uncaught error in media worker'));
process.on('unhandledRejection', (error) => worker.reportFailure('unhandled rejection', error, 'unhandled rejection in media worker'));

post({ type: 'ready', port: worker.port });
