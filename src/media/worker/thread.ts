import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import type { AudioRelay } from '../../replication/audio-relay.ts';
import type { MediaPeer } from '../sfu/peer.ts';
import { PipeTransport } from '../transport/pipe-transport.ts';
import { PrimaryPipeEnd, ReplicaPipeEnd } from '../../replication/pipe-ends.ts';
import type { MediaRoom } from '../sfu/room.ts';
import { MediaWorker } from './media-worker.ts';
import type { WorkerCall, WorkerEvent, WorkerMethods, WorkerOptions } from './protocol.ts';

/**
 * A media worker thread: its own UDP port, rooms and peers. It runs every per-packet path, so
 * the main thread (API, signaling) never competes with forwarding and mixing.
 */
const options = workerData.options as WorkerOptions;
const logger = pino({ level: options.logLevel, base: { worker: options.name } });
const worker = await MediaWorker.start({ listenIp: options.listenIp, port: options.port, announcedIp: options.announcedIp, logger });
const rooms = new Map<string, MediaRoom>();
const peers = new Map<string, { peer: MediaPeer; roomId: string }>();
const pipes = new Map<string, { end: PrimaryPipeEnd | ReplicaPipeEnd | undefined; transport: PipeTransport; roomId: string }>();
const port = parentPort!;
const post = (event: WorkerEvent) => port.postMessage(event);

const peer = (peerId: string) => {
  const entry = peers.get(peerId);
  if (!entry) throw new Error(`no peer ${peerId}`);
  return entry.peer;
};

const pipe = (pipeId: string) => {
  const entry = pipes.get(pipeId);
  if (!entry?.end) throw new Error(`no connected pipe ${pipeId}`);
  return entry.end;
};
const toBuffers = (key: { key: Uint8Array; salt: Uint8Array }) => ({ key: Buffer.from(key.key), salt: Buffer.from(key.salt) });

const methods: WorkerMethods = {
  createRoom(roomId, replica) {
    rooms.set(roomId, worker.createRoom(roomId, replica));
  },
  closeRoom(roomId) {
    const room = rooms.get(roomId);
    if (!room) return;
    rooms.delete(roomId);
    for (const [pipeId, entry] of pipes) {
      if (entry.roomId !== roomId) continue;
      (entry.end ?? entry.transport).close();
      pipes.delete(pipeId);
    }
    for (const [peerId, entry] of peers) if (entry.roomId === roomId) peers.delete(peerId);
    worker.closeRoom(room);
  },
  createPeer(roomId, peerId, attendeeId) {
    const room = rooms.get(roomId);
    if (!room) throw new Error(`no room ${roomId}`);
    const created = worker.createPeer(room, attendeeId);
    created.onConnectionChange = (connected) => post({ type: 'peerConnection', peerId, connected });
    peers.set(peerId, { peer: created, roomId });
  },
  closePeer(peerId) {
    peers.get(peerId)?.peer.close();
    peers.delete(peerId);
  },
  negotiate: (peerId, input) => peer(peerId).negotiate(input),
  setMuted: (peerId, muted) => peer(peerId).setMuted(muted),
  setPaused: (peerId, streamIds, paused) => peer(peerId).setPaused(streamIds, paused),
  applyCapabilities: (peerId, capabilities) => peer(peerId).applyCapabilities(capabilities),
  unpublish: (peerId) => peer(peerId).unpublish(),
  peerStats: (peerId) => peers.get(peerId)?.peer.stats(),
  createPipe: () => {
    throw new Error('createPipe is asynchronous');
  },
  connectPipe(pipeId, remote, keys) {
    const entry = pipes.get(pipeId);
    const room = entry && rooms.get(entry.roomId);
    if (!entry || !room) throw new Error(`no pipe ${pipeId}`);
    entry.transport.connect(remote, { send: toBuffers(keys.send), receive: toBuffers(keys.receive) });
    if (room.replica) {
      const end = new ReplicaPipeEnd(room, room.mixer as AudioRelay, entry.transport);
      end.onDemand = (streamIds) => post({ type: 'pipeDemand', pipeId, streamIds });
      entry.end = end;
    } else {
      entry.end = new PrimaryPipeEnd(room, entry.transport);
    }
  },
  pipeSendStreams: (pipeId, streamIds) => pipe(pipeId).sendStreams(streamIds),
  pipeSetStreams(pipeId, streams) {
    const end = pipe(pipeId);
    if (end instanceof ReplicaPipeEnd) end.setStreams(streams);
    else end.receiveStreams(streams);
  },
  pipePromote: (pipeId, slot, attendeeId) => pipe(pipeId).promote(slot, attendeeId),
  pipeDemote(pipeId, slot, attendeeId) {
    const end = pipe(pipeId);
    if (end instanceof ReplicaPipeEnd) end.demote(attendeeId);
    else end.demote(slot);
  },
  closePipe(pipeId) {
    const entry = pipes.get(pipeId);
    pipes.delete(pipeId);
    (entry?.end ?? entry?.transport)?.close();
  },
  pipeStats: (pipeId) => (pipes.get(pipeId) ? { ...pipes.get(pipeId)!.transport.stats } : undefined),
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

/** Opening a pipe binds a socket, so it is the one call answered asynchronously. */
async function createPipe(pipeId: string, roomId: string): Promise<number> {
  if (!rooms.has(roomId)) throw new Error(`no room ${roomId}`);
  const transport = await PipeTransport.open(options.listenIp);
  if (!rooms.has(roomId)) {
    transport.close();
    throw new Error(`room ${roomId} closed while its pipe opened`);
  }
  pipes.set(pipeId, { end: undefined, transport, roomId });
  return transport.port;
}

port.on('message', (call: WorkerCall) => {
  if (call.method === 'createPipe') {
    createPipe(...call.args).then(
      (result) => post({ type: 'result', id: call.id, result }),
      (error: Error) => post({ type: 'result', id: call.id, error: error.message }),
    );
    return;
  }
  try {
    const result = (methods[call.method] as (...args: unknown[]) => unknown)(...call.args);
    post({ type: 'result', id: call.id, result });
  } catch (error) {
    post({ type: 'result', id: call.id, error: (error as Error).message });
  }
});

setInterval(() => {
  for (const [roomId, room] of rooms) post({ type: 'levels', roomId, levels: [...room.audioLevels()] });
}, 200).unref();
setInterval(() => {
  for (const [roomId, room] of rooms) {
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
