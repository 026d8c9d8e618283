/** A demo endpoint's refusal: its HTTP status and a sentence for the page to show. */
export class DemoError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'DemoError';
  }
}

export const notFound = (message: string) => new DemoError(404, message);
export const forbidden = (message: string) => new DemoError(403, message);
export const conflict = (message: string) => new DemoError(409, message);

/** The AWS SDK error's name (NotFoundException, LimitExceededException…), if `error` is one. */
export function serviceErrorName(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name.endsWith('Exception') ? name : undefined;
}
