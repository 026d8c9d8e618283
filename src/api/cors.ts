import type { FastifyReply, FastifyRequest } from 'fastify';

/** Answers a browser's CORS preflight for an endpoint the SDK calls cross-origin (POST from any origin). */
export function corsPreflight(request: FastifyRequest, reply: FastifyReply): void {
  reply
    .code(204)
    .header('access-control-allow-origin', '*')
    .header('access-control-allow-methods', 'POST, OPTIONS')
    .header('access-control-allow-headers', request.headers['access-control-request-headers'] ?? '*')
    .header('access-control-max-age', '86400')
    .send();
}
