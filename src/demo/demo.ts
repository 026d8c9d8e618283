import { ChimeSDKMeetingsClient } from '@aws-sdk/client-chime-sdk-meetings';
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import type { AccessKey } from '../api/sigv4.ts';
import type { MeetingEventBus } from '../meetings/events.ts';
import { PageBundle } from './page-bundle.ts';
import { registerDemoRoutes } from './routes.ts';
import type { WebinarLimits } from './webinar.ts';
import { Webinars } from './webinars.ts';

export interface DemoOptions {
  /** The node's API, which serves the demo's routes beside its own. */
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>;
  /** Where this node's API answers on this machine, known once it listens. */
  apiUrl: () => string;
  /** The key pair the demo signs its API calls with (the node's first). */
  key: AccessKey;
  limits: WebinarLimits;
  /** Where the demo learns that a meeting ended (deleted anywhere, or idle), to forget its webinar or replica. */
  events: MeetingEventBus;
  logger: Logger;
}

/**
 * The webinar demo served at `/`: a page built on the unmodified browser SDK, and a small server side that makes
 * the meetings through the node's own API with the AWS SDK, as an application of Amphi would.
 */
export class Demo {
  readonly webinars: Webinars;
  private chime: ChimeSDKMeetingsClient | undefined;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: DemoOptions) {
    this.webinars = new Webinars({ chime: () => this.client(), limits: options.limits, logger: options.logger });
    registerDemoRoutes(options.app, this.webinars, new PageBundle());
    this.unsubscribe = options.events.subscribe('meetingEnded', (meeting) => this.webinars.meetingEnded(meeting.MeetingId));
  }

  close(): void {
    this.unsubscribe();
    this.webinars.close();
    this.chime?.destroy();
  }

  private client(): ChimeSDKMeetingsClient {
    this.chime ??= new ChimeSDKMeetingsClient({
      region: 'us-east-1',
      endpoint: this.options.apiUrl(),
      credentials: { accessKeyId: this.options.key.accessKeyId, secretAccessKey: this.options.key.secretAccessKey },
    });
    return this.chime;
  }
}
