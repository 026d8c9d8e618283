import type { ISdkDataMessagePayload, ISdkStreamDescriptor } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import type { OpenedReplicaEnd } from '../replication/replica-link.ts';
import type { DataAllowance, PostedData } from './data-messages.ts';
import type { OutgoingFrame } from './frames.ts';
import type { Publication } from './publications.ts';
import type { IndexRequest, Participant, PresenceInfo, SessionRef } from './roster.ts';

/** A promotion: the replica session's participant in the primary meeting. */
export type Promotion = Participant<ReplicaView>;

/** Why a promotion was refused: the status and description PRIMARY_MEETING_JOIN_ACK carries. */
export interface PromotionRefusal {
  status: number;
  description: string;
}

/**
 * A replica meeting's view of its primary: the primary's state its viewers are shown, and the requests a promoted
 * viewer makes of it. The primary's conference implements it on its own node; a bridge to another node's primary
 * implements it over the network, answering the queries from a copy of the primary's state kept up to date.
 */
export interface PrimaryHandle {
  readonly meetingId: string;
  /** Starts feeding `replica` (opens the media pipe); false if the primary closed meanwhile. */
  attachReplica(replica: ReplicaView): Promise<boolean>;
  /** Stops feeding `replica` (or gives up waiting for it); the primary may close if nobody else holds it. */
  detachReplica(replica: ReplicaView): void;

  /** Everyone present in the primary, for a viewer's roster. */
  presence(): PresenceInfo[];
  index(request: IndexRequest): OutgoingFrame;
  bitrates(): { sourceStreamId: number; avgBitrateBps: number }[];
  bitrateOf(streamId: number): number;
  groupOf(streamId: number): number | undefined;
  /** Data messages still alive, for a viewer that joins now. */
  liveData(now: number): ISdkDataMessagePayload[];

  /** Makes a replica session a participant of the primary as `attendee`, or says why not (status, description). */
  promote(replica: ReplicaView, session: SessionRef, attendee: AttendeeRecord): Promise<Promotion | PromotionRefusal>;
  /** Ends a promotion the replica decided to end (the client left it, or its connection ended). */
  endPromotion(replica: ReplicaView, promotion: Promotion, dropped: boolean): void;
  /** A promoted participant's video, allocated in the primary's stream ids (undefined: over the meeting's limit). */
  allocatePromotedVideo(promotion: Promotion, descriptors: ISdkStreamDescriptor[]): Promise<Publication | undefined>;
  /** A promoted participant now publishes `publication` (undefined: nothing) up its replica's pipe. */
  publishPromoted(replica: ReplicaView, promotion: Promotion, publication: Publication | undefined): void;
  mutePromoted(promotion: Promotion, muted: boolean): void;
  /** Data messages of a promoted participant, checked against the session's allowance and sent to the primary's clients. */
  postPromotedData(promotion: Promotion, session: SessionRef, messages: ISdkDataMessagePayload[], allowance: DataAllowance, now: number): Promise<PostedData>;
}

/** A primary on this node, as a bridge to a replica on another node reads it. */
export interface LocalPrimary extends PrimaryHandle {
  /** Everyone present, with their publications and the replica each promoted one sits in. */
  participants(): Participant<ReplicaView>[];
}

/** Primaries hosted on other nodes, reached over the network. */
export interface RemotePrimaries {
  /** The primary, for the replica `replicaMeetingId` here; undefined if its node can't be reached. */
  connect(primary: MeetingRecord, replicaMeetingId: string): Promise<PrimaryHandle | undefined>;
}

/** What a primary needs of a replica it feeds. */
export interface ReplicaView {
  readonly meetingId: string;
  /** Opens the far end of the pipe in the replica's room. */
  openPipeEnd(): Promise<OpenedReplicaEnd>;
  /** Presence, volumes and data messages of the primary, for the replica's viewers. */
  relay(frame: OutgoingFrame, except?: SessionRef): void;
  /** The primary's roster or publications changed: every viewer's INDEX again. */
  refreshIndex(): void;
  /** The primary ends a promotion (the attendee was deleted, or joined the primary elsewhere); the client is told. */
  revokePromotion(session: SessionRef): void;
  /** A promoted viewer may no longer send video (its primary attendee's capabilities changed). */
  stopPublishing(session: SessionRef): void;
  /** The primary ended; the viewers see an empty meeting until the replica ends too. */
  primaryEnded(removed: PresenceInfo[]): void;
}

