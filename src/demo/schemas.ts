// The demo endpoints' input, checked before anything is done with it.
import { z } from 'zod';
import { NAME_PATTERN } from './protocol.ts';

const GUID = /^[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}$/;
const id = (what: string) => z.string().regex(GUID, `${what} must be an id such as 5f1c2e7a-…`).transform((value) => value.toLowerCase());
const name = z.string().trim().regex(NAME_PATTERN, "name must be 1 to 40 letters, digits, spaces or . _ ' -");
const key = z.string().min(1, 'key is missing').max(100, 'key is too long');

export const webinarParams = z.object({ webinarId: id('webinarId') });
export const viewerParams = z.object({
  webinarId: id('webinarId'),
  viewerId: z.string().regex(/^[a-f0-9]{12}$/, 'viewerId must be 12 hexadecimal digits'),
});

export const startRequest = z.strictObject({
  title: z.string().trim().regex(/^[^\p{Cc}]{1,80}$/u, 'title must be 1 to 80 characters, without control characters'),
  name,
});
export const joinRequest = z.strictObject({ name });
export const keyedRequest = z.strictObject({ key });
export const handRequest = z.strictObject({ key, raised: z.boolean() });
export const chatRequest = z.strictObject({
  key,
  text: z.string().trim().regex(/^[^\p{Cc}]{1,500}$/u, 'text must be 1 to 500 characters, without control characters'),
});
export const streamQuery = z.object({ key });
