/**
 * The service's exceptions, as the AWS SDK client knows them. Domain code throws these;
 * the HTTP layer only renders them (status, X-Amzn-ErrorType header, {Code, Message} body).
 */
export class ServiceError extends Error {
  constructor(
    /** Modelled exception name, sent as X-Amzn-ErrorType. */
    readonly type: string,
    /** Short code sent as the body's Code member, like the service's. */
    readonly code: string,
    readonly status: number,
    message: string,
    readonly extra: { resourceName?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = type;
  }
}

export const badRequest = (message: string) =>
  new ServiceError('BadRequestException', 'BadRequest', 400, message);
export const unauthorized = (message: string) =>
  new ServiceError('UnauthorizedException', 'Unauthorized', 401, message);
export const forbidden = (message: string) =>
  new ServiceError('ForbiddenException', 'Forbidden', 403, message);
/**
 * A SigV4 credential scope the service does not serve (region, service, date or terminator), named
 * as AWS's request front end names it. The Chime model has no such shape, so the SDK raises its
 * generic service exception with this name and the 403.
 */
export const invalidSignature = (message: string) =>
  new ServiceError('InvalidSignatureException', 'InvalidSignature', 403, message);
export const notFound = (message: string) =>
  new ServiceError('NotFoundException', 'NotFound', 404, message);
export const meetingNotFound = (meetingId: string) => notFound(`Meeting ${meetingId} not found`);
export const attendeeNotFound = (attendeeId: string) => notFound(`Attendee ${attendeeId} not found`);
export const resourceNotFound = (message: string, resourceName: string) =>
  new ServiceError('ResourceNotFoundException', 'NotFound', 404, message, { resourceName });
export const conflict = (message: string) =>
  new ServiceError('ConflictException', 'Conflict', 409, message);
export const unprocessable = (message: string) =>
  new ServiceError('UnprocessableEntityException', 'Unprocessable', 422, message);
export const limitExceeded = (message: string) =>
  new ServiceError('LimitExceededException', 'ResourceLimitExceeded', 400, message);
export const tooManyTags = (message: string, resourceName: string) =>
  new ServiceError('TooManyTagsException', 'ResourceLimitExceeded', 400, message, { resourceName });
export const throttled = (message: string) =>
  new ServiceError('ThrottlingException', 'Throttling', 429, message);
export const serviceFailure = (message = 'The service encountered an unexpected error') =>
  new ServiceError('ServiceFailureException', 'ServiceFailure', 500, message);
export const serviceUnavailable = (message: string, retryAfterSeconds: number) =>
  new ServiceError('ServiceUnavailableException', 'ServiceUnavailable', 503, message, { retryAfterSeconds });
