import { z } from 'zod';
import { CAPABILITIES, type AttendeeRecord, type MeetingRecord } from '../meetings/model.ts';
import type { JournalEntry } from './memory-index.ts';

/**
 * The shape of a journal line, checked at replay: a line that is JSON but not a record would otherwise enter the
 * indexes and fail later, far from its cause. Only the structure is checked, not the API's constraints on values:
 * the store keeps whatever the service gave it.
 */

const capability = z.enum(CAPABILITIES as unknown as readonly ['SendReceive', 'Send', 'Receive', 'None']);

const meetingRecord = z.object({
  MeetingId: z.string().min(1),
  MeetingHostId: z.string().optional(),
  ExternalMeetingId: z.string().optional(),
  MediaRegion: z.string().min(1),
  MeetingFeatures: z
    .object({
      Audio: z.object({ EchoReduction: z.enum(['AVAILABLE', 'UNAVAILABLE']).optional() }).optional(),
      Video: z.object({ MaxResolution: z.enum(['None', 'HD', 'FHD']).optional() }).optional(),
      Content: z.object({ MaxResolution: z.enum(['None', 'FHD', 'UHD']).optional() }).optional(),
      Attendee: z.object({ MaxCount: z.number().optional() }).optional(),
    })
    .optional(),
  PrimaryMeetingId: z.string().optional(),
  TenantIds: z.array(z.string()),
  NotificationsConfiguration: z
    .object({ LambdaFunctionArn: z.string().optional(), SnsTopicArn: z.string().optional(), SqsQueueArn: z.string().optional() })
    .optional(),
  MediaPlacementNetworkType: z.enum(['Ipv4Only', 'DualStack']).optional(),
  ClientRequestToken: z.string(),
  RequestFingerprint: z.string(),
  MediaNodeId: z.string(),
  Tags: z.array(z.object({ Key: z.string(), Value: z.string() })),
  CreatedAt: z.number(),
}) satisfies z.ZodType<MeetingRecord>;

const attendeeRecord = z.object({
  MeetingId: z.string().min(1),
  AttendeeId: z.string().min(1),
  ExternalUserId: z.string(),
  JoinToken: z.string().min(1),
  Capabilities: z.object({ Audio: capability, Video: capability, Content: capability }),
  CreatedAt: z.number(),
}) satisfies z.ZodType<AttendeeRecord>;

const journalEntry = z.discriminatedUnion('op', [
  z.object({ op: z.literal('putMeeting'), meeting: meetingRecord }),
  z.object({ op: z.literal('deleteMeeting'), meetingId: z.string() }),
  z.object({ op: z.literal('putAttendee'), attendee: attendeeRecord }),
  z.object({ op: z.literal('deleteAttendee'), meetingId: z.string(), attendeeId: z.string() }),
]) satisfies z.ZodType<JournalEntry>;

/** One journal line as an entry; throws an Error saying what is wrong with it (not JSON, or which member). */
export function parseJournalEntry(line: string): JournalEntry {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new Error(`not JSON (${(error as Error).message})`);
  }
  const result = journalEntry.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : 'entry'}: ${issue.message}`);
    throw new Error(problems.join('; '));
  }
  return result.data;
}
