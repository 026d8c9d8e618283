import type { Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import type { AudienceMember, DemoEvent } from './protocol.ts';

/** A replica meeting of the webinar; its viewers are those whose `replica` is it. */
export interface Replica {
  /** 1-based, in creation order, never reused: what pages show ("replica 2"). */
  number: number;
  meeting: Meeting;
}

export interface Viewer {
  id: string;
  name: string;
  key: string;
  replica: Replica;
  /** The viewer's attendee in its replica. */
  attendeeId: string;
  handRaised: boolean;
  /** The primary attendee the viewer was promoted as, while on stage. */
  stageAttendeeId: string | undefined;
}

export interface WebinarLimits {
  seatsPerReplica: number;
  /** Replicas a primary may have (the node's --max-replicas-per-primary). */
  replicaQuota: number;
}

/** Who a key proves a caller to be. */
export type Participant = { role: 'presenter' } | { role: 'viewer'; viewer: Viewer };

/**
 * One webinar's state on this node: the primary meeting, its replicas and the audience seated in them. Pure
 * bookkeeping (no I/O), so that replica assignment can be checked on its own.
 */
export class Webinar {
  readonly replicas: Replica[] = [];
  readonly viewers = new Map<string, Viewer>();
  private replicasCreated = 0;

  constructor(
    readonly primary: Meeting,
    readonly title: string,
    readonly presenterKey: string,
    readonly limits: WebinarLimits,
  ) {}

  /** The primary meeting's id, which is also the webinar's. */
  get id(): string {
    return this.primary.MeetingId!;
  }

  seatsTaken(replica: Replica): number {
    let taken = 0;
    for (const viewer of this.viewers.values()) if (viewer.replica === replica) taken++;
    return taken;
  }

  /** The oldest replica with a free seat: replicas fill one after the other, so few carry the primary's media. */
  replicaWithFreeSeat(): Replica | undefined {
    return this.replicas.find((replica) => this.seatsTaken(replica) < this.limits.seatsPerReplica);
  }

  get mayAddReplica(): boolean {
    return this.replicas.length < this.limits.replicaQuota;
  }

  addReplica(meeting: Meeting): Replica {
    const replica = { number: ++this.replicasCreated, meeting };
    this.replicas.push(replica);
    return replica;
  }

  /** Forgets a replica the service deleted (an empty one is deleted after 5 minutes); its viewers go with it. */
  removeReplica(replica: Replica): void {
    const index = this.replicas.indexOf(replica);
    if (index < 0) return; // already forgotten (its end was reported twice: the event and a failed call)
    this.replicas.splice(index, 1);
    for (const viewer of [...this.viewers.values()]) if (viewer.replica === replica) this.viewers.delete(viewer.id);
  }

  seat(viewer: Omit<Viewer, 'handRaised' | 'stageAttendeeId'>): Viewer {
    if (this.seatsTaken(viewer.replica) >= this.limits.seatsPerReplica) throw new Error(`replica ${viewer.replica.number} is full`);
    const seated: Viewer = { ...viewer, handRaised: false, stageAttendeeId: undefined };
    this.viewers.set(seated.id, seated);
    return seated;
  }

  participant(key: string): Participant | undefined {
    if (key === this.presenterKey) return { role: 'presenter' };
    for (const viewer of this.viewers.values()) if (viewer.key === key) return { role: 'viewer', viewer };
    return undefined;
  }

  audience(): AudienceMember[] {
    return [...this.viewers.values()].map((viewer) => ({
      viewerId: viewer.id,
      name: viewer.name,
      replica: viewer.replica.number,
      handRaised: viewer.handRaised,
      onStage: viewer.stageAttendeeId !== undefined,
    }));
  }

  /** The audience event: its size and each replica's viewers, with who they are for the presenter only. */
  audienceEvent(forPresenter: boolean): DemoEvent {
    return {
      type: 'audience',
      watching: this.viewers.size,
      replicas: this.replicas.map((replica) => this.seatsTaken(replica)),
      ...(forPresenter ? { members: this.audience() } : {}),
    };
  }
}
