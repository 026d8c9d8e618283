/** Records as the store keeps them. Member names follow the API's, so rendering is a copy. */

export type Capability = 'SendReceive' | 'Send' | 'Receive' | 'None';
export const CAPABILITIES: readonly Capability[] = ['SendReceive', 'Send', 'Receive', 'None'];

export interface AttendeeCapabilities {
  Audio: Capability;
  Video: Capability;
  Content: Capability;
}

export interface MeetingFeatures {
  Audio?: { EchoReduction?: 'AVAILABLE' | 'UNAVAILABLE' };
  Video?: { MaxResolution?: 'None' | 'HD' | 'FHD' };
  Content?: { MaxResolution?: 'None' | 'FHD' | 'UHD' };
  Attendee?: { MaxCount?: number };
}

export interface NotificationsConfiguration {
  LambdaFunctionArn?: string;
  SnsTopicArn?: string;
  SqsQueueArn?: string;
}

export interface Tag {
  Key: string;
  Value: string;
}

export interface MeetingRecord {
  MeetingId: string;
  MeetingHostId?: string;
  ExternalMeetingId?: string;
  MediaRegion: string;
  /** As requested; the service echoes only what was asked for. */
  MeetingFeatures?: MeetingFeatures;
  PrimaryMeetingId?: string;
  TenantIds: string[];
  NotificationsConfiguration?: NotificationsConfiguration;
  MediaPlacementNetworkType?: 'Ipv4Only' | 'DualStack';
  ClientRequestToken: string;
  /** Fingerprint of the creating request, to tell a retry from a token reused for another meeting. */
  RequestFingerprint: string;
  /** The media node chosen for this meeting's region when it was created. */
  MediaNodeId: string;
  /** That node's public URL at creation, so MediaPlacement stays renderable if it dies (absent in older records). */
  MediaNodeUrl?: string;
  Tags: Tag[];
  CreatedAt: number;
}

export interface AttendeeRecord {
  MeetingId: string;
  AttendeeId: string;
  ExternalUserId: string;
  JoinToken: string;
  Capabilities: AttendeeCapabilities;
  CreatedAt: number;
}
