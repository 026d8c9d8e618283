import type dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { DgramRtpSender } from './dgram-rtp-sender.ts';
import { dgramHandle } from './dgram-fd.ts';
import { nativeAddon, nativeChoiceFromEnv, type NativeAddonLoad } from './native-addon.ts';
import { FAN_OUT_BATCH_PACKETS, NativeRtpSender } from './native-rtp-sender.ts';
import type { RtpSender } from './rtp-sender.ts';

let pathReported = false;

/**
 * The native sender on `socket` when the addon is built and the socket's descriptor checks out, else the TypeScript
 * one. The first call with a logger in a thread logs which path that thread uses and why.
 */
export function createRtpSender(
  socket: dgram.Socket,
  logger?: Logger,
  load: NativeAddonLoad = nativeAddon(),
  batchPackets = FAN_OUT_BATCH_PACKETS,
): RtpSender {
  const { sender, reason } = chooseSender(socket, load, batchPackets);
  if (logger && !pathReported) {
    pathReported = true;
    if (nativeChoiceFromEnv() === undefined) logger.warn({ AMPHI_NATIVE: process.env.AMPHI_NATIVE }, 'AMPHI_NATIVE is not on, off or auto: using auto');
    if (sender.path === 'native') logger.info({ sendPath: 'native' }, 'RTP send path: native (OpenSSL SRTP, sendmmsg batches)');
    else logger.info({ sendPath: 'typescript', reason }, `RTP send path: TypeScript (${reason})`);
  }
  return sender;
}

function chooseSender(socket: dgram.Socket, load: NativeAddonLoad, batchPackets: number): { sender: RtpSender; reason?: string } {
  if (!load.addon) return { sender: new DgramRtpSender(socket), reason: load.reason };
  const handle = dgramHandle(socket);
  const port = (socket.address() as AddressInfo).port;
  if (!handle || load.addon.boundUdp4Port(handle.fd) !== port) {
    return { sender: new DgramRtpSender(socket), reason: "this Node's dgram socket does not expose its descriptor" };
  }
  return { sender: new NativeRtpSender(load.addon, handle, new DgramRtpSender(socket), batchPackets) };
}
