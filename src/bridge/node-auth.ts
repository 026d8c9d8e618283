import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header a node proves itself with when it calls another. */
export const NODE_AUTH_HEADER = 'x-amphi-node-auth';
/** How far apart two nodes' clocks may be. */
const MAX_SKEW_MS = 5 * 60_000;

const mac = (secret: string, nodeId: string, issuedAt: number, path: string) =>
  createHmac('sha256', secret).update(`amphi-node\n${nodeId}\n${issuedAt}\n${path}`).digest('base64url');

/**
 * Proof that a call comes from a node of this cluster: an HMAC of the caller's id, the time and the path under
 * the cluster's shared secret (the nodes share their access keys; see the cluster docs).
 */
export function signNodeCall(secret: string, nodeId: string, path: string, now = Date.now()): string {
  return `${encodeURIComponent(nodeId)}.${now}.${mac(secret, nodeId, now, path)}`;
}

/** The calling node's id, or undefined when the proof is missing, forged, or too old. */
export function verifyNodeCall(secret: string, header: string | undefined, path: string, now = Date.now()): string | undefined {
  const parts = (header ?? '').split('.');
  if (parts.length !== 3) return undefined;
  const [encodedId, issued, given] = parts as [string, string, string];
  const issuedAt = Number(issued);
  if (!Number.isSafeInteger(issuedAt) || Math.abs(now - issuedAt) > MAX_SKEW_MS) return undefined;
  let nodeId: string;
  try {
    nodeId = decodeURIComponent(encodedId);
  } catch {
    return undefined;
  }
  const expected = Buffer.from(mac(secret, nodeId, issuedAt, path));
  const received = Buffer.from(given);
  return expected.length === received.length && timingSafeEqual(expected, received) ? nodeId : undefined;
}
