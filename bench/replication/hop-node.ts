/**
 * One process of cross-node-hop.ts, standing for a node: `primary` (the primary's room and its pipe end),
 * `replica` (the replica's room, its listener and viewer), or `both` (the two in this one process, as hop.ts).
 * Driven by its parent over IPC (messages below); the pipe between two such processes is the real UDP/SRTP one.
 */
import { PrimarySide, ReplicaSide, type PipeAddress } from './hop-sides.ts';
import type { PipeKeys } from '../../src/media/transport/pipe-transport.ts';

export type HopRole = 'primary' | 'replica' | 'both';

/** From the parent. `connect` goes to a primary or replica process with the other's pipe port. */
export type ToHopNode =
  | { type: 'connect'; remote: PipeAddress; keys: PipeKeys }
  | { type: 'demand'; streamIds: number[] }
  | { type: 'start' }
  | { type: 'reset' }
  | { type: 'stop' }
  | { type: 'report' }
  | { type: 'close' };

/** To the parent. */
export type FromHopNode =
  | { type: 'ready'; port?: number }
  | { type: 'demand'; streamIds: number[] }
  | { type: 'stopped'; sent: { audio: number; video: number } }
  | { type: 'delays'; audio: number[]; video: number[] };

const role = process.argv[2] as HopRole;
if (!['primary', 'replica', 'both'].includes(role)) {
  process.stderr.write(`hop-node: role must be primary, replica or both, not ${String(role)}\n`);
  process.exit(2);
}
const send = (message: FromHopNode) => process.send!(message);

const primary = role === 'replica' ? undefined : await PrimarySide.open();
const replica = role === 'primary' ? undefined : await ReplicaSide.open();
if (primary && replica) {
  const { randomBytes } = await import('node:crypto');
  const down = { key: randomBytes(16), salt: randomBytes(12) };
  const up = { key: randomBytes(16), salt: randomBytes(12) };
  primary.connect({ address: '127.0.0.1', port: replica.port }, { send: down, receive: up });
  replica.connect({ address: '127.0.0.1', port: primary.port }, { send: up, receive: down });
  replica.on('demand', (streamIds) => primary.sendStreams(streamIds));
} else if (replica) {
  replica.on('demand', (streamIds) => send({ type: 'demand', streamIds }));
}

process.on('message', (message: ToHopNode) => {
  switch (message.type) {
    case 'connect': {
      // Structured clone hands Buffers over as plain Uint8Arrays.
      const key = ({ key, salt }: { key: Uint8Array; salt: Uint8Array }) => ({ key: Buffer.from(key), salt: Buffer.from(salt) });
      (primary ?? replica)!.connect(message.remote, { send: key(message.keys.send), receive: key(message.keys.receive) });
      break;
    }
    case 'demand':
      primary?.sendStreams(message.streamIds);
      break;
    case 'start':
      primary?.start();
      break;
    case 'reset':
      primary?.resetCounts();
      replica?.reset();
      break;
    case 'stop':
      if (primary) send({ type: 'stopped', sent: primary.stop() });
      break;
    case 'report':
      if (replica) send({ type: 'delays', ...replica.delays() });
      break;
    case 'close':
      primary?.close();
      replica?.close();
      process.disconnect();
      break;
  }
});

replica?.subscribe();
send({ type: 'ready', port: (primary && replica ? undefined : (primary ?? replica)!.port) });
