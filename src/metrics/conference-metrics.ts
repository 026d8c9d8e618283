import { Counter, Gauge, type Registry } from 'prom-client';
import type { Conference, SignalingMetrics } from '../signaling/conference.ts';

type Role = 'primary' | 'replica';
const ROLES: Role[] = ['primary', 'replica'];

/**
 * This node's live meetings as signaling holds them: conferences and their joined attendees per role, the pipes
 * its primaries feed replicas through, and the promotions answered. Gauges are counted at scrape time from the
 * conferences themselves, so nothing needs keeping in step.
 */
export class ConferenceMetrics implements SignalingMetrics {
  private readonly promotions: Counter<'result'>;
  private conferences: () => Iterable<Conference> = () => [];

  constructor(registry: Registry) {
    this.promotions = new Counter({
      name: 'amphi_promotions_total',
      help: "Replica viewers' requests to join the primary meeting, by result: ok, or the status they were refused with",
      labelNames: ['result'],
      registers: [registry],
    });
    const census = () => this.census();
    new Gauge({
      name: 'amphi_meetings',
      help: 'Meetings with a live conference on this node (attendees connected, or a primary feeding its replicas), by role',
      labelNames: ['role'],
      registers: [registry],
      collect() {
        const counts = census();
        for (const role of ROLES) this.set({ role }, counts[role].meetings);
      },
    });
    new Gauge({
      name: 'amphi_attendees_connected',
      help: 'Signaling sessions joined to a meeting on this node, by role of the meeting',
      labelNames: ['role'],
      registers: [registry],
      collect() {
        const counts = census();
        for (const role of ROLES) this.set({ role }, counts[role].attendees);
      },
    });
    new Gauge({
      name: 'amphi_replica_pipes',
      help: "Media pipes from this node's primary meetings to their replicas (on this node or another)",
      registers: [registry],
      collect() {
        this.set(census().pipes);
      },
    });
  }

  /** Where the live conferences are read from at each scrape: the signaling gateway, once it exists. */
  observe(conferences: () => Iterable<Conference>): void {
    this.conferences = conferences;
  }

  promotionAnswered(result: 'ok' | number): void {
    this.promotions.inc({ result: String(result) });
  }

  private census() {
    const counts = { primary: { meetings: 0, attendees: 0 }, replica: { meetings: 0, attendees: 0 }, pipes: 0 };
    for (const conference of this.conferences()) {
      const role = conference.meeting.PrimaryMeetingId === undefined ? counts.primary : counts.replica;
      role.meetings++;
      for (const session of conference.sessions) if (session.state === 'joined') role.attendees++;
      counts.pipes += conference.linkedReplicaIds().length;
    }
    return counts;
  }
}
