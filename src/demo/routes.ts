import type { FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ServiceError } from '../meetings/errors.ts';
import { DemoError } from './errors.ts';
import type { PageBundle } from './page-bundle.ts';
import { DEMO_API_PREFIX, type DemoErrorBody } from './protocol.ts';
import { chatRequest, handRequest, joinRequest, keyedRequest, startRequest, streamQuery, viewerParams, webinarParams } from './schemas.ts';
import type { Webinars } from './webinars.ts';

type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;

/** The page's paths: the page itself at `/` (`/?webinar=<id>` for the audience), its script and style. */
const PAGE_PATHS = ['/', '/demo/app.js', '/demo/app.css'];

/**
 * The demo's routes: its page, and small JSON endpoints whose input is checked by zod (400 with a sentence when
 * it is wrong). They sit in their own fastify scope, so their errors are the demo's JSON, not the API's shape.
 */
export function registerDemoRoutes(app: App, webinars: Webinars, page: PageBundle): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error, request, reply) => sendError(reply, request, error));

    for (const path of PAGE_PATHS) {
      scope.get(path, async (_request, reply) => {
        const asset = (await page.assets()).get(path)!;
        reply.code(200).header('content-type', asset.contentType).header('cache-control', 'no-cache').send(asset.body);
      });
    }

    const api = DEMO_API_PREFIX;
    scope.post(`${api}/webinars`, async (request, reply) => {
      const { title, name } = parse(startRequest, jsonBody(request));
      answer(reply, 201, await webinars.start(title, name));
    });
    scope.get(`${api}/webinars/:webinarId`, async (request, reply) => {
      answer(reply, 200, webinars.info(parse(webinarParams, request.params).webinarId));
    });
    scope.post(`${api}/webinars/:webinarId/end`, async (request, reply) => {
      await webinars.end(parse(webinarParams, request.params).webinarId, parse(keyedRequest, jsonBody(request)).key);
      reply.code(204).send();
    });
    scope.get(`${api}/webinars/:webinarId/events`, async (request, reply) => {
      const { webinarId } = parse(webinarParams, request.params);
      const { key } = parse(streamQuery, request.query);
      webinars.info(webinarId); // an unknown webinar is answered as JSON, before the stream starts
      reply.hijack();
      try {
        webinars.openStream(webinarId, key, reply.raw);
      } catch (error) {
        if (!reply.raw.headersSent) {
          const status = error instanceof DemoError ? error.status : 500;
          reply.raw.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (error as Error).message }));
        } else reply.raw.destroy();
      }
    });
    scope.post(`${api}/webinars/:webinarId/viewers`, async (request, reply) => {
      const { webinarId } = parse(webinarParams, request.params);
      answer(reply, 201, await webinars.join(webinarId, parse(joinRequest, jsonBody(request)).name));
    });
    scope.post(`${api}/webinars/:webinarId/viewers/:viewerId/leave`, async (request, reply) => {
      const { webinarId, viewerId } = parse(viewerParams, request.params);
      await webinars.leave(webinarId, viewerId, parse(keyedRequest, jsonBody(request)).key);
      reply.code(204).send();
    });
    scope.post(`${api}/webinars/:webinarId/viewers/:viewerId/hand`, async (request, reply) => {
      const { webinarId, viewerId } = parse(viewerParams, request.params);
      const { key, raised } = parse(handRequest, jsonBody(request));
      webinars.raiseHand(webinarId, viewerId, key, raised);
      reply.code(204).send();
    });
    scope.post(`${api}/webinars/:webinarId/viewers/:viewerId/chat`, async (request, reply) => {
      const { webinarId, viewerId } = parse(viewerParams, request.params);
      const { key, text } = parse(chatRequest, jsonBody(request));
      webinars.chat(webinarId, viewerId, key, text);
      reply.code(204).send();
    });
    scope.post(`${api}/webinars/:webinarId/viewers/:viewerId/stage`, async (request, reply) => {
      const { webinarId, viewerId } = parse(viewerParams, request.params);
      await webinars.bringOnStage(webinarId, viewerId, parse(keyedRequest, jsonBody(request)).key);
      reply.code(204).send();
    });
    scope.post(`${api}/webinars/:webinarId/viewers/:viewerId/audience`, async (request, reply) => {
      const { webinarId, viewerId } = parse(viewerParams, request.params);
      await webinars.backToAudience(webinarId, viewerId, parse(keyedRequest, jsonBody(request)).key);
      reply.code(204).send();
    });
  });
}

function parse<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message));
  throw new DemoError(400, problems.join('; '));
}

/** The API keeps bodies as raw bytes (for SigV4); the demo's are JSON objects. */
function jsonBody(request: FastifyRequest): unknown {
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0) throw new DemoError(400, 'the request needs a JSON body');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new DemoError(400, 'the request body is not valid JSON');
  }
}

function answer(reply: FastifyReply, status: number, body: unknown): void {
  reply.code(status).header('content-type', 'application/json').header('cache-control', 'no-store').send(JSON.stringify(body));
}

function sendError(reply: FastifyReply, request: FastifyRequest, error: unknown): void {
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  let status = 500;
  let message = 'the demo server failed; see its log';
  if (error instanceof DemoError) [status, message] = [error.status, error.message];
  else if (error instanceof ServiceError) {
    // The node's own refusals (a drain's 503) reach the demo's routes too.
    [status, message] = [error.status, error.message];
    if (error.extra.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.extra.retryAfterSeconds));
  }
  else if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) [status, message] = [statusCode, (error as Error).message];
  else request.log.error({ err: error }, 'a demo request failed');
  const body: DemoErrorBody = { error: message };
  answer(reply, status, body);
}
