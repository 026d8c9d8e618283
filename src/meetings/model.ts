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
  /** The media node hosting this meeting: chosen for its region at creation, another one if that node died. */
  MediaNodeId: string;
  /**
   * The public URL of the node chosen at creation (in a cluster, its region's front), which MediaPlacement names for
   * the meeting's whole life: kept when the meeting is re-homed, so its clients reconnect where they were sent
   * (absent in older records and, after a restart, in the embedded node's).
   */
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
