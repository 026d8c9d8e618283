import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { badRequest, ServiceError, serviceFailure, serviceUnavailable, throttled } from '../meetings/errors.ts';
import { NodesUnavailableError } from '../cluster/node-directory.ts';
import { StoreUnavailableError } from '../meetings/meeting-store.ts';
import type { MeetingService } from '../meetings/service.ts';
import { parseQuery, type SigV4Verifier } from './sigv4.ts';
import type { Throttle } from './throttle.ts';
import { corsPreflight } from './cors.ts';
import { registerTurnControl } from './turn-control.ts';
import { NO_TURN, type TurnCredentialIssuer } from '../signaling/turn-credentials.ts';

export interface ApiDeps {
  service: MeetingService;
  verifier: SigV4Verifier;
  throttle: Throttle;
  logger: Logger;
  /** Set to true while shutting down: new API calls get 503 with Retry-After. */
  state: { draining: boolean };
  /** Answers /healthz with more than liveness. */
  health?: () => Record<string, unknown>;
  /** Signs the TURN credentials MediaPlacement.TurnControlUrl hands out (absent: no TURN). */
  turn?: TurnCredentialIssuer;
  /** Told of every answered API call (unset: not counted). */
  requests?: ApiRequestObserver;
  /** Serves GET /metrics, unauthenticated as Prometheus scrapes it (unset: no such route). */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}

export interface ApiRequestObserver {
  /** `operation`: the API operation's name, or UnknownOperation when the request names none. */
  requestAnswered(operation: string, status: number, seconds: number): void;
}

/** The operation label of a request that names no operation. */
export const UNKNOWN_OPERATION = 'UnknownOperation';

/** Largest request body accepted; the largest legitimate one (100 attendees) is ~30 kB. */
export const MAX_BODY_BYTES = 256 * 1024;
/** What a draining node tells callers to wait before retrying (through a load balancer: at another node). */
export const DRAIN_RETRY_AFTER_SECONDS = 5;
/** Longest path label routed; every real one is a 36-character id. */
export const MAX_LABEL_LENGTH = 2048;

type Query = Record<string, string | string[]>;
interface Call {
  params: Record<string, string>;
  query: Query;
  body: unknown;
}
type Handler = (call: Call) => Promise<unknown>;
/** One route serves several operations told apart by `?operation=`; '' is the operation without it. */
interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  operations: Record<string, { name: string; status: number; handler: Handler }>;
}

function routes(service: MeetingService): Route[] {
  const op = (name: string, handler: Handler, status = 200) => ({ name, handler, status });
  const text = (query: Query, key: string) => {
    const value = query[key];
    return Array.isArray(value) ? value[0] : value;
  };
  return [
    {
      method: 'POST',
      url: '/meetings',
      operations: {
        '': op('CreateMeeting', ({ body }) => service.createMeeting(body)),
        'create-attendees': op('CreateMeetingWithAttendees', ({ body }) => service.createMeetingWithAttendees(body)),
      },
    },
    { method: 'GET', url: '/meetings/:MeetingId', operations: { '': op('GetMeeting', ({ params }) => service.getMeeting(params.MeetingId!)) } },
    {
      method: 'DELETE',
      url: '/meetings/:MeetingId',
      operations: { '': op('DeleteMeeting', ({ params }) => service.deleteMeeting(params.MeetingId!), 204) },
    },
    {
      method: 'POST',
      url: '/meetings/:MeetingId/attendees',
      operations: {
        '': op('CreateAttendee', ({ params, body }) => service.createAttendee(params.MeetingId!, body)),
        'batch-create': op('BatchCreateAttendee', ({ params, body }) => service.batchCreateAttendee(params.MeetingId!, body)),
      },
    },
    {
      method: 'GET',
      url: '/meetings/:MeetingId/attendees',
      operations: {
        '': op('ListAttendees', ({ params, query }) =>
          service.listAttendees(params.MeetingId!, { maxResults: text(query, 'max-results'), nextToken: text(query, 'next-token') }),
        ),
      },
    },
    {
      method: 'GET',
      url: '/meetings/:MeetingId/attendees/:AttendeeId',
      operations: { '': op('GetAttendee', ({ params }) => service.getAttendee(params.MeetingId!, params.AttendeeId!)) },
    },
    {
      method: 'DELETE',
      url: '/meetings/:MeetingId/attendees/:AttendeeId',
      operations: {
        '': op('DeleteAttendee', ({ params }) => service.deleteAttendee(params.MeetingId!, params.AttendeeId!), 204),
      },
    },
    {
      method: 'PUT',
      url: '/meetings/:MeetingId/attendees/:AttendeeId/capabilities',
      operations: {
        '': op('UpdateAttendeeCapabilities', ({ params, body }) =>
          service.updateAttendeeCapabilities(params.MeetingId!, params.AttendeeId!, body),
        ),
      },
    },
    {
      method: 'PUT',
      url: '/meetings/:MeetingId/attendees/capabilities',
      operations: {
        'batch-update-except': op('BatchUpdateAttendeeCapabilitiesExcept', ({ params, body }) =>
          service.batchUpdateAttendeeCapabilitiesExcept(params.MeetingId!, body),
        ),
      },
    },
    {
      method: 'POST',
      url: '/meetings/:MeetingId/transcription',
      operations: {
        start: op('StartMeetingTranscription', ({ params, body }) => service.startMeetingTranscription(params.MeetingId!, body)),
        stop: op('StopMeetingTranscription', ({ params }) => service.stopMeetingTranscription(params.MeetingId!)),
      },
    },
    {
      method: 'POST',
      url: '/tags',
      operations: {
        'tag-resource': op('TagResource', ({ body }) => service.tagResource(body), 204),
        'untag-resource': op('UntagResource', ({ body }) => service.untagResource(body), 204),
      },
    },
    {
      method: 'GET',
      url: '/tags',
      operations: { '': op('ListTagsForResource', ({ query }) => service.listTagsForResource(text(query, 'arn'))) },
    },
  ];
}

/**
 * The Chime SDK Meetings REST API (restJson1) over fastify: SigV4 on every operation, errors
 * as X-Amzn-ErrorType plus {Code, Message, RequestId}, and x-amzn-RequestId on every answer.
 */
export function buildApi(deps: ApiDeps) {
  const { state } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    genReqId: () => randomUUID(),
    // Paths keep their percent-encoding in the raw URL for SigV4; labels are checked by the service.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: MAX_LABEL_LENGTH },
    // What the router refuses before any route runs (bad escapes, over-long labels) is answered in
    // the service's error shape too, not fastify's own.
    frameworkErrors: (error, request, reply) => sendError(reply, request, routerError(error, request)),
    // While closing, calls on open connections are answered by the draining hook below, in the service's shape.
    return503OnClosing: false,
  });

  // Bodies stay raw bytes until the signature over them has been checked.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-amzn-RequestId', request.id);
    if (state.draining && !request.url.startsWith('/healthz') && !request.url.startsWith('/metrics')) {
      throw serviceUnavailable('Amphi is shutting down; retry against another node or after restart', DRAIN_RETRY_AFTER_SECONDS);
    }
  });
  // A draining node ends each connection after its answer, so keep-alive clients reconnect (elsewhere, behind a
  // load balancer) instead of holding a connection that is about to close.
  app.addHook('onSend', async (_request, reply) => {
    if (state.draining) reply.header('connection', 'close');
  });

  const requests = deps.requests;
  if (requests) {
    app.addHook('onResponse', async (request, reply) => {
      const operation = operationOf(request);
      if (operation) requests.requestAnswered(operation, reply.statusCode, reply.elapsedTime / 1000);
    });
  }

  app.setErrorHandler((error, request, reply) => sendError(reply, request, toServiceError(error, request)));
  // AWS's front end answers a route that names no operation with 404 UnknownOperationException
  // (its common errors); the body's Code is the same error, shortened as every other Code is.
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      request,
      new ServiceError('UnknownOperationException', 'UnknownOperation', 404, `No operation matches ${request.method} ${request.url.split('?')[0]}`),
    ),
  );

  app.get('/healthz', async (_request, reply) => {
    reply.code(state.draining ? 503 : 200).send({ status: state.draining ? 'draining' : 'ok', ...deps.health?.() });
  });

  const metrics = deps.metrics;
  if (metrics) {
    app.get('/metrics', async (_request, reply) => {
      const { contentType, body } = await metrics();
      reply.code(200).header('content-type', contentType).send(body);
    });
  }

  // The browser SDK posts its client events here (MediaPlacement.EventIngestionUrl).
  app.options('/v1/client-events', async (request, reply) => corsPreflight(request, reply));
  app.post('/v1/client-events', async (request, reply) => {
    reply.header('access-control-allow-origin', '*');
    request.log.debug({ bytes: (request.body as Buffer | undefined)?.length ?? 0 }, 'client events received');
    // The SDK parses the answer as JSON, so an empty object rather than an empty body.
    reply.code(200).header('content-type', 'application/json').send('{}');
  });

  registerTurnControl(app, deps.service, deps.turn ?? NO_TURN);

  for (const route of routes(deps.service)) {
    const config: ApiRouteConfig = { operations: Object.fromEntries(Object.entries(route.operations).map(([key, operation]) => [key, operation.name])) };
    app.route({
      method: route.method,
      url: route.url,
      config,
      handler: async (request, reply) => {
        const rawUrl = request.raw.url ?? request.url;
        const queryStart = rawUrl.indexOf('?');
        const query = queryStart < 0 ? {} : parseQuery(rawUrl.slice(queryStart + 1));
        const operationName = typeof query.operation === 'string' ? query.operation : '';
        const operation = route.operations[operationName];
        const body = (request.body as Buffer | undefined) ?? Buffer.alloc(0);
        const accessKeyId = await deps.verifier.verify({ method: request.method, rawUrl, headers: request.headers, body });
        if (!operation) {
          throw badRequest(`Unknown operation '${operationName}' for ${route.method} ${route.url}`);
        }
        if (!deps.throttle.take(`${accessKeyId}:${operation.name}`)) {
          throw throttled(`Rate exceeded for ${operation.name}`);
        }
        const result = await operation.handler({ params: request.params as Record<string, string>, query, body: parseJson(body) });
        if (operation.status === 204 || result === undefined) {
          reply.code(operation.status === 204 ? 204 : 200).send();
        } else {
          reply.code(operation.status).header('content-type', 'application/json').send(JSON.stringify(result));
        }
      },
    });
  }
  return app;
}

/** What an API route carries for the request metrics: its operations' names by their `?operation=` value. */
interface ApiRouteConfig {
  operations: Record<string, string>;
}

/** The API operation a request called, as the route and `?operation=` name it; undefined for what is not the API (/healthz, /metrics). */
function operationOf(request: FastifyRequest): string | undefined {
  const operations = (request.routeOptions.config as Partial<ApiRouteConfig> | undefined)?.operations;
  if (!operations) return request.is404 ? UNKNOWN_OPERATION : undefined;
  const rawUrl = request.raw.url ?? request.url;
  const queryStart = rawUrl.indexOf('?');
  const named = queryStart < 0 ? undefined : parseQuery(rawUrl.slice(queryStart + 1)).operation;
  const key = typeof named === 'string' ? named : '';
  return Object.hasOwn(operations, key) ? operations[key]! : UNKNOWN_OPERATION;
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw badRequest(`The request body is not valid JSON: ${(error as Error).message}`);
  }
}

function toServiceError(error: unknown, request: FastifyRequest): ServiceError {
  if (error instanceof ServiceError) return error;
  if (error instanceof StoreUnavailableError || error instanceof NodesUnavailableError) {
    request.log.warn({ err: error }, error instanceof StoreUnavailableError ? 'the store is unavailable' : 'no media node can be named');
    return serviceUnavailable('The service is temporarily unavailable. Try again.', 1);
  }
  const fastifyError = error as { statusCode?: number; code?: string; message?: string };
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new ServiceError('BadRequestException', 'BadRequest', 413, `The request body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  if (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new ServiceError('BadRequestException', 'BadRequest', fastifyError.statusCode, fastifyError.message ?? 'Bad request');
  }
  request.log.error({ err: error }, 'request failed');
  return serviceFailure();
}

/**
 * The router's refusals. A label that is not valid percent-encoding or longer than any id could be
 * is a malformed request, as a label that is not an id is (BadRequestException from validation);
 * it is answered before the signature is checked, as the service's front end does with a bad URL.
 */
function routerError(error: { code?: string }, request: FastifyRequest): ServiceError {
  const path = echo((request.raw.url ?? request.url).split('?')[0] ?? '');
  if (error.code === 'FST_ERR_BAD_URL') return badRequest(`The request path is not valid percent-encoding: ${path}`);
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return badRequest(`A path label is longer than ${MAX_LABEL_LENGTH} characters: ${path}`);
  }
  return toServiceError(error, request);
}

/** Client text quoted back in an error, cut short so a huge value is not echoed whole. */
function echo(text: string): string {
  return text.length <= 128 ? text : `${text.slice(0, 128)}...`;
}

function sendError(reply: FastifyReply, request: FastifyRequest, error: ServiceError) {
  if (error.extra.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.extra.retryAfterSeconds));
  reply
    .code(error.status)
    .header('x-amzn-RequestId', request.id)
    .header('x-amzn-ErrorType', error.type)
    .header('content-type', 'application/json')
    .send(
      JSON.stringify({
        Code: error.code,
        Message: error.message,
        RequestId: request.id,
        ...(error.extra.resourceName !== undefined ? { ResourceName: error.extra.resourceName } : {}),
      }),
    );
}
