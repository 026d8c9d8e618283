import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import type { MediaPeer } from './peer.ts';
import type { MediaRoom } from './room.ts';
import { MediaWorker } from './worker.ts';
import type { WorkerCall, WorkerEvent, WorkerMethods, WorkerOptions } from './worker-protocol.ts';

/**
 * A media worker thread: its own UDP port, rooms and peers. It runs every per-packet path, so
 * the main thread (API, signaling) never competes with forwarding and mixing.
 */
const options = workerData.options as WorkerOptions;
const logger = pino({ level: options.logLevel, base: { worker: options.name } });
const worker = await MediaWorker.start({ listenIp: options.listenIp, port: options.port, announcedIp: options.announcedIp, logger });
const rooms = new Map<string, MediaRoom>();
const peers = new Map<string, { peer: MediaPeer; roomId: string }>();
const port = parentPort!;
const post = (event: WorkerEvent) => port.postMessage(event);

const peer = (peerId: string) => {
  const entry = peers.get(peerId);
  if (!entry) throw new Error(`no peer ${peerId}`);
  return entry.peer;
};

const methods: WorkerMethods = {
  createRoom(roomId) {
    rooms.set(roomId, worker.createRoom(roomId));
  },
  closeRoom(roomId) {
    const room = rooms.get(roomId);
    if (!room) return;
    rooms.delete(roomId);
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
};

port.on('message', (call: WorkerCall) => {
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

post({ type: 'ready', port: worker.port });
