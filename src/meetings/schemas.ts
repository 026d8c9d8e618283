import { z } from 'zod';
import { badRequest } from './errors.ts';
import { CAPABILITIES } from './model.ts';

/**
 * The constraints of the service model on every input member. The client validates
 * nothing, so these are the only guard; messages follow the service's
 * "Value at '<member>' failed to satisfy constraint: ..." style.
 */

const required = (kind: string) => ({
  error: (issue: { input: unknown }) => (issue.input === undefined || issue.input === null ? 'Member must not be null' : `Member must be ${kind}`),
});

const str = (min: number, max: number) =>
  z
    .string(required('a string'))
    .min(min, `Member must have length greater than or equal to ${min}`)
    .max(max, `Member must have length less than or equal to ${max}`);

const matching = (schema: z.ZodString, pattern: RegExp, shown = pattern.source) =>
  schema.regex(pattern, `Member must satisfy regular expression pattern: ${shown}`);

const list = <T extends z.ZodType>(item: T, min: number, max: number) =>
  z
    .array(item, required('a list'))
    .min(min, `Member must have length greater than or equal to ${min}`)
    .max(max, `Member must have length less than or equal to ${max}`);

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, {
    error: (issue: { input: unknown }) =>
      issue.input === undefined || issue.input === null
        ? 'Member must not be null'
        : `Member must satisfy enum value set: [${values.join(', ')}]`,
  });

const struct = <T extends z.ZodRawShape>(shape: T) => z.object(shape, required('a structure'));

export const GUID_PATTERN = /^[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}$/;
export const guid = matching(str(36, 36), GUID_PATTERN, '[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}');

const EXTERNAL_ID_PATTERN = /^[-_&@+=,(){}[\]/«».:|'"#a-zA-Z0-9À-ÿ\s]*$/u;
const externalId = matching(str(2, 64), EXTERNAL_ID_PATTERN, `[-_&@+=,(){}\\[\\]\\/«».:|'"#a-zA-Z0-9À-ÿ\\s]*`).refine(
  (value) => !value.toLowerCase().startsWith('aws:'),
  'Member must not start with the reserved prefix aws:',
);

const capability = oneOf(CAPABILITIES as unknown as readonly ['SendReceive', 'Send', 'Receive', 'None']);
export const capabilities = struct({ Audio: capability, Video: capability, Content: capability });

const arn = matching(str(1, 1024), /^arn[/:\-_.a-zA-Z0-9]+$/);

export const tagKey = matching(str(1, 128), /^[a-zA-Z+-=._:/]+$/);
const tag = struct({
  Key: tagKey,
  Value: matching(str(0, 256), /^[\s\w+-=.:/@]*$/),
});
export const tags = list(tag, 0, 50);

const meetingFeatures = struct({
  Audio: struct({ EchoReduction: oneOf(['AVAILABLE', 'UNAVAILABLE']).optional() }).optional(),
  Video: struct({ MaxResolution: oneOf(['None', 'HD', 'FHD']).optional() }).optional(),
  Content: struct({ MaxResolution: oneOf(['None', 'FHD', 'UHD']).optional() }).optional(),
  Attendee: struct({
    MaxCount: z
      .number(required('a number'))
      .int('Member must be an integer')
      .min(1, 'Member must have value greater than or equal to 1')
      .max(250, 'Member must have value less than or equal to 250')
      .optional(),
  }).optional(),
});

const tenantId = matching(str(2, 256), /^(?!.*?(.)\1{3})[-_!@#$a-zA-Z0-9]*$/);

export const createAttendeeRequest = struct({
  ExternalUserId: externalId,
  Capabilities: capabilities.optional(),
});

const meetingMembers = {
  ClientRequestToken: matching(str(2, 64), /^[-_a-zA-Z0-9]*$/),
  MediaRegion: str(2, 64),
  MeetingHostId: externalId.optional(),
  ExternalMeetingId: externalId,
  NotificationsConfiguration: struct({
    LambdaFunctionArn: arn.optional(),
    SnsTopicArn: arn.optional(),
    SqsQueueArn: arn.optional(),
  }).optional(),
  MeetingFeatures: meetingFeatures.optional(),
  PrimaryMeetingId: str(2, 64).optional(),
  TenantIds: list(tenantId, 1, 5).optional(),
  Tags: tags.optional(),
  MediaPlacementNetworkType: oneOf(['Ipv4Only', 'DualStack']).optional(),
};

export const createMeetingRequest = struct(meetingMembers);
export const createMeetingWithAttendeesRequest = struct({
  ...meetingMembers,
  // Attendee items are checked one by one so that a bad item fails alone (see BatchCreateAttendee).
  Attendees: list(z.unknown(), 1, 10),
});
export const batchCreateAttendeeRequest = struct({ Attendees: list(z.unknown(), 1, 100) });
export const updateCapabilitiesRequest = struct({ Capabilities: capabilities });
export const batchUpdateCapabilitiesExceptRequest = struct({
  ExcludedAttendeeIds: list(struct({ AttendeeId: guid }), 1, 250),
  Capabilities: capabilities,
});
export const tagResourceRequest = struct({ ResourceARN: matching(str(1, 1011), /^arn:/), Tags: list(tag, 1, 50) });
export const untagResourceRequest = struct({
  ResourceARN: matching(str(1, 1011), /^arn:/),
  TagKeys: list(tagKey, 1, 50),
});

const engineTranscribeSettings = struct({
  LanguageCode: oneOf(['en-US', 'en-GB', 'es-US', 'fr-CA', 'fr-FR', 'en-AU', 'it-IT', 'de-DE', 'pt-BR', 'ja-JP', 'ko-KR', 'zh-CN', 'th-TH', 'hi-IN']).optional(),
  VocabularyFilterMethod: oneOf(['remove', 'mask', 'tag']).optional(),
  VocabularyFilterName: str(1, 200).optional(),
  VocabularyName: str(1, 200).optional(),
  Region: oneOf(['us-east-2', 'us-east-1', 'us-west-2', 'ap-northeast-2', 'ap-southeast-2', 'ap-northeast-1', 'ca-central-1', 'eu-central-1', 'eu-west-1', 'eu-west-2', 'sa-east-1', 'auto', 'us-gov-west-1']).optional(),
  EnablePartialResultsStabilization: z.boolean(required('a boolean')).optional(),
  PartialResultsStability: oneOf(['low', 'medium', 'high']).optional(),
  ContentIdentificationType: oneOf(['PII']).optional(),
  ContentRedactionType: oneOf(['PII']).optional(),
  PiiEntityTypes: matching(str(1, 300), /^[A-Z_, ]+$/).optional(),
  LanguageModelName: matching(str(1, 200), /^[0-9a-zA-Z._-]+$/).optional(),
  IdentifyLanguage: z.boolean(required('a boolean')).optional(),
  LanguageOptions: matching(str(1, 200), /^[a-zA-Z-,]+$/).optional(),
  PreferredLanguage: str(2, 5).optional(),
  VocabularyNames: matching(str(1, 3000), /^[a-zA-Z0-9,-._]+$/).optional(),
  VocabularyFilterNames: matching(str(1, 3000), /^[a-zA-Z0-9,-._]+$/).optional(),
})
  .refine((s) => s.LanguageCode !== undefined || s.IdentifyLanguage === true, 'Either LanguageCode or IdentifyLanguage is required')
  .refine((s) => !(s.ContentIdentificationType && s.ContentRedactionType), 'ContentIdentificationType and ContentRedactionType are mutually exclusive');

const engineTranscribeMedicalSettings = struct({
  LanguageCode: oneOf(['en-US']),
  Specialty: oneOf(['PRIMARYCARE', 'CARDIOLOGY', 'NEUROLOGY', 'ONCOLOGY', 'RADIOLOGY', 'UROLOGY']),
  Type: oneOf(['CONVERSATION', 'DICTATION']),
  VocabularyName: str(1, 200).optional(),
  Region: oneOf(['us-east-1', 'us-east-2', 'us-west-2', 'ap-southeast-2', 'ca-central-1', 'eu-west-1', 'auto']).optional(),
  ContentIdentificationType: oneOf(['PHI']).optional(),
});

export const startTranscriptionRequest = struct({
  TranscriptionConfiguration: struct({
    EngineTranscribeSettings: engineTranscribeSettings.optional(),
    EngineTranscribeMedicalSettings: engineTranscribeMedicalSettings.optional(),
  }).refine(
    (c) => (c.EngineTranscribeSettings === undefined) !== (c.EngineTranscribeMedicalSettings === undefined),
    'Exactly one of EngineTranscribeSettings and EngineTranscribeMedicalSettings is required',
  ),
});

export type CreateMeetingInput = z.infer<typeof createMeetingRequest>;
export type CreateAttendeeInput = z.infer<typeof createAttendeeRequest>;
export type CapabilitiesInput = z.infer<typeof capabilities>;

/** Validates `input` against `schema`; a failure is a BadRequestException naming each member. */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, memberPrefix = ''): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw badRequest(describeIssues(result.error.issues, memberPrefix));
}

export function describeIssues(issues: readonly z.core.$ZodIssue[], memberPrefix = ''): string {
  const parts = issues.map((issue) => {
    const member = [memberPrefix, ...issue.path.map(String)].filter(Boolean).join('.');
    return member ? `Value at '${member}' failed to satisfy constraint: ${issue.message}` : issue.message;
  });
  const count = parts.length;
  return `${count} validation error${count === 1 ? '' : 's'} detected: ${parts.join('; ')}`;
}
