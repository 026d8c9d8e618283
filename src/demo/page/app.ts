/// <reference lib="dom" />
// The webinar demo page: `/` lets a presenter start a webinar, `/?webinar=<id>` seats a viewer in a replica.
import type { VideoTileState } from 'amazon-chime-sdk-js';
import { displayName, type AudienceMember, type DemoEvent, type PresenterSeat, type ViewerSeat } from '../protocol.ts';
import { demoApi } from './demo-api.ts';
import { LiveSession, type ChatLine, type OnStagePerson } from './live-session.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const button = (id: string) => $<HTMLButtonElement>(id);

function show(view: 'start' | 'invite' | 'live' | 'ended'): void {
  for (const name of ['start', 'invite', 'live', 'ended']) $(`view-${name}`).hidden = name !== view;
}

/** Runs a form's action with its button disabled, showing a failure under it. */
function onSubmit(form: HTMLFormElement, action: (data: FormData) => Promise<void>): void {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const submit = form.querySelector('button')!;
    const error = form.parentElement!.querySelector<HTMLElement>('.error') ?? form.querySelector<HTMLElement>('.error')!;
    submit.disabled = true;
    error.textContent = '';
    action(new FormData(form))
      .catch((failure: unknown) => (error.textContent = (failure as Error).message))
      .finally(() => (submit.disabled = false));
  });
}

function element(tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const STOP_REASONS: Record<string, string> = { MeetingEnded: 'The presenter ended it.', Left: 'You left.' };
/** The presenter's seat is kept in this tab, so a reload can resume the webinar rather than orphan it. */
const SAVED_SEAT = 'amphi-demo-presenter';

type Role = { kind: 'presenter'; seat: PresenterSeat } | { kind: 'viewer'; seat: ViewerSeat };

/** The live view of one participant: tiles, people, chat and the controls of its role. */
class LiveView {
  private readonly session: LiveSession;
  private readonly tiles = new Map<number, HTMLElement>();
  private speakers = new Set<string>();
  private people: OnStagePerson[] = [];
  private handRaised = false;
  private events: EventSource | undefined;

  constructor(private readonly role: Role) {
    const { seat } = role;
    this.session = new LiveSession(seat.meeting, seat.attendee, $<HTMLAudioElement>('meeting-audio'));
    this.session.on('people', (people) => ((this.people = people), this.renderPeople()));
    this.session.on('speakers', (ids) => ((this.speakers = new Set(ids)), this.renderSpeakers()));
    this.session.on('tile', (tile) => this.showTile(tile));
    this.session.on('tileRemoved', (tileId) => this.removeTile(tileId));
    this.session.on('chat', (line) => this.appendChat(line));
    this.session.on('demoted', () => this.demoted());
    this.session.on('stopped', (reason) => this.ended(STOP_REASONS[reason] ?? `Disconnected (${reason}).`));
  }

  async start(): Promise<void> {
    const { seat } = this.role;
    show('live');
    $('live-title').textContent = seat.title;
    $('live-badge').hidden = false;
    const presenting = this.role.kind === 'presenter';
    $('status').textContent = presenting ? 'You are presenting' : `Watching from replica ${(seat as ViewerSeat).replica}`;
    if (!presenting) $('status').dataset.replica = String((seat as ViewerSeat).replica);
    $<HTMLInputElement>('audience-link').value = `${location.origin}/?webinar=${seat.webinarId}`;
    await this.session.start(presenting);
    this.wireControls();
    this.renderControls();
    this.events = demoApi.events(seat.webinarId, this.key, (event) => void this.handle(event).catch((error: unknown) => this.fail(error)));
    if (this.role.kind === 'viewer') {
      const viewer = this.role.seat;
      addEventListener('pagehide', () => demoApi.leaveOnExit(viewer));
    }
  }

  private get key(): string {
    return this.role.kind === 'presenter' ? this.role.seat.presenterKey : this.role.seat.viewerKey;
  }

  private async handle(event: DemoEvent): Promise<void> {
    switch (event.type) {
      case 'audience':
        $('watching').textContent = String(event.watching);
        $('replicas').textContent = event.replicas.map((seats, i) => `Replica ${i + 1}: ${seats}`).join(' · ');
        if (event.members) this.renderAudience(event.members);
        break;
      case 'chat':
        // A viewer's message, sent on into the meeting: replication brings it to every replica.
        this.session.sendChat(event.text, event.name);
        break;
      case 'stage':
        await this.session.promote(event.attendee).catch(async (error: unknown) => {
          await this.backToAudience();
          throw error;
        });
        this.handRaised = false;
        this.renderControls();
        break;
      case 'offStage':
        await this.session.demote();
        break;
      case 'ended':
        this.session.leave();
        this.ended(STOP_REASONS.MeetingEnded!);
        break;
    }
  }

  private wireControls(): void {
    const webinarId = this.role.seat.webinarId;
    button('mic').onclick = () => (this.session.setMuted(!this.session.isMuted), this.renderControls());
    button('camera').onclick = () => void this.session.setCamera(!this.session.isCameraOn).then(() => this.renderControls());
    button('hand').onclick = () => {
      if (this.role.kind !== 'viewer') return;
      this.handRaised = !this.handRaised;
      this.renderControls();
      demoApi.raiseHand(this.role.seat, this.handRaised).catch((error: unknown) => this.fail(error));
    };
    button('leave-stage').onclick = () => void this.session.demote();
    button('copy-link').onclick = () => {
      void navigator.clipboard?.writeText($<HTMLInputElement>('audience-link').value);
      button('copy-link').textContent = 'Link copied';
      setTimeout(() => (button('copy-link').textContent = 'Copy the audience link'), 2000);
    };
    button('end').onclick = () => void demoApi.end(webinarId, this.key).catch((error: unknown) => this.fail(error));
    button('leave').onclick = () => {
      if (this.role.kind === 'viewer') demoApi.leaveOnExit(this.role.seat);
      this.session.leave();
    };
    onSubmit($<HTMLFormElement>('chat-form'), async (data) => {
      const text = String(data.get('text') ?? '').trim();
      if (!text) return;
      // On stage, a viewer is a primary attendee and sends like the presenter; in the audience, through the server.
      if (this.role.kind === 'presenter' || this.session.isPromoted) this.session.sendChat(text);
      else await demoApi.chat(this.role.seat, text);
      $<HTMLFormElement>('chat-form').reset();
    });
  }

  private renderControls(): void {
    const presenter = this.role.kind === 'presenter';
    const publishing = presenter || this.session.isPromoted;
    button('mic').hidden = !publishing;
    button('mic').textContent = this.session.isMuted ? 'Unmute' : 'Mute';
    button('camera').hidden = !publishing;
    button('camera').textContent = this.session.isCameraOn ? 'Stop camera' : 'Start camera';
    button('hand').hidden = presenter || this.session.isPromoted;
    button('hand').textContent = this.handRaised ? 'Lower hand' : 'Raise hand';
    button('leave-stage').hidden = presenter || !this.session.isPromoted;
    button('copy-link').hidden = $('audience-link').hidden = !presenter;
    button('end').hidden = !presenter;
    button('leave').hidden = presenter;
  }

  private showTile(tile: VideoTileState): void {
    const tileId = tile.tileId!;
    let figure = this.tiles.get(tileId);
    if (!figure) {
      figure = element('figure', tile.localTile ? 'tile local' : 'tile');
      const video = document.createElement('video');
      video.autoplay = video.muted = video.playsInline = true;
      figure.append(video, element('figcaption', ''));
      $('tiles').append(figure);
      this.tiles.set(tileId, figure);
      this.session.bindVideo(tileId, video);
    }
    figure.dataset.attendeeId = tile.boundAttendeeId ?? '';
    figure.querySelector('figcaption')!.textContent = tile.localTile ? 'You' : displayName(tile.boundExternalUserId);
    this.renderTilesEmpty();
    this.renderSpeakers();
  }

  private removeTile(tileId: number): void {
    this.tiles.get(tileId)?.remove();
    this.tiles.delete(tileId);
    this.renderTilesEmpty();
  }

  private renderTilesEmpty(): void {
    $('tiles').querySelector<HTMLElement>('.empty')!.hidden = this.tiles.size > 0;
  }

  private renderPeople(): void {
    const list = $('on-stage');
    list.replaceChildren(
      ...this.people.map((person) => {
        const item = element('li', '');
        item.dataset.attendeeId = person.attendeeId;
        item.append(element('span', 'name', person.name));
        return item;
      }),
    );
    this.renderSpeakers();
  }

  private renderSpeakers(): void {
    for (const node of document.querySelectorAll<HTMLElement>('[data-attendee-id]')) {
      node.classList.toggle('speaking', this.speakers.has(node.dataset.attendeeId!));
    }
  }

  /** The presenter's list: raised hands first, each viewer with the button that moves them. */
  private renderAudience(members: AudienceMember[]): void {
    const webinarId = this.role.seat.webinarId;
    const sorted = [...members].sort((a, b) => Number(b.onStage) - Number(a.onStage) || Number(b.handRaised) - Number(a.handRaised));
    $('audience').replaceChildren(
      ...sorted.map((member) => {
        const item = element('li', member.handRaised ? 'hand' : '');
        item.dataset.viewerId = member.viewerId;
        const move = element('button', member.onStage ? 'to-audience' : 'to-stage', member.onStage ? 'Back to audience' : 'Invite on stage');
        move.onclick = () =>
          void (member.onStage ? demoApi.toAudience : demoApi.toStage)(webinarId, member.viewerId, this.key).catch((error: unknown) => this.fail(error));
        item.append(element('span', 'name', member.name), element('span', 'tag', `R${member.replica}`), move);
        return item;
      }),
    );
  }

  private appendChat(line: ChatLine): void {
    const log = $('chat-log');
    const item = element('li', line.fromAudience ? 'audience' : '');
    item.append(element('b', '', line.name), document.createTextNode(line.text));
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  /** Back in the audience (asked for, or put there): the server deletes the primary attendee. */
  private demoted(): void {
    this.renderControls();
    void this.backToAudience();
  }

  private async backToAudience(): Promise<void> {
    if (this.role.kind !== 'viewer') return;
    const { webinarId, viewerId } = this.role.seat;
    await demoApi.toAudience(webinarId, viewerId, this.key).catch((error: unknown) => this.fail(error));
  }

  private ended(reason: string): void {
    this.events?.close();
    if (reason === STOP_REASONS.MeetingEnded) sessionStorage.removeItem(SAVED_SEAT);
    $('live-badge').hidden = true;
    $('ended-reason').textContent = reason;
    show('ended');
  }

  private fail(error: unknown): void {
    $('view-live').querySelector('.chat .error')!.textContent = (error as Error).message;
  }
}

async function offerResume(): Promise<void> {
  const saved = sessionStorage.getItem(SAVED_SEAT);
  if (!saved) return;
  const seat = JSON.parse(saved) as PresenterSeat;
  const live = await demoApi.info(seat.webinarId).then(
    () => true,
    () => false,
  );
  if (!live) return sessionStorage.removeItem(SAVED_SEAT);
  const resume = button('resume');
  resume.textContent = `Resume presenting “${seat.title}”`;
  resume.hidden = false;
  resume.onclick = () => void new LiveView({ kind: 'presenter', seat }).start();
}

async function main(): Promise<void> {
  const webinarId = new URLSearchParams(location.search).get('webinar');
  if (!webinarId) {
    show('start');
    onSubmit($<HTMLFormElement>('start-form'), async (data) => {
      const seat = await demoApi.start(String(data.get('title')), String(data.get('name')));
      sessionStorage.setItem(SAVED_SEAT, JSON.stringify(seat));
      await new LiveView({ kind: 'presenter', seat }).start();
    });
    await offerResume();
    return;
  }
  show('invite');
  onSubmit($<HTMLFormElement>('join-form'), async (data) => {
    const seat = await demoApi.join(webinarId, String(data.get('name')));
    await new LiveView({ kind: 'viewer', seat }).start();
  });
  try {
    const info = await demoApi.info(webinarId);
    $('invite-title').textContent = info.title;
    $('invite-watching').textContent = ['Be the first to watch.', '1 person is watching.'][info.watching] ?? `${info.watching} people are watching.`;
  } catch {
    $('ended-reason').textContent = 'This link names no webinar on this server: it may have ended.';
    show('ended');
  }
}

void main();
