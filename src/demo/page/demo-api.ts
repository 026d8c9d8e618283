// The demo server's endpoints, as the page calls them.
import { DEMO_API_PREFIX, type DemoErrorBody, type DemoEvent, type PresenterSeat, type ViewerSeat, type WebinarInfo } from '../protocol.ts';

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${DEMO_API_PREFIX}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  if (!response.ok) {
    const error = (await response.json().catch(() => ({ error: response.statusText }))) as DemoErrorBody;
    throw new Error(error.error);
  }
  return (response.status === 204 ? undefined : await response.json()) as T;
}

export const demoApi = {
  start: (title: string, name: string) => call<PresenterSeat>('POST', '/webinars', { title, name }),
  info: (webinarId: string) => call<WebinarInfo>('GET', `/webinars/${encodeURIComponent(webinarId)}`),
  end: (webinarId: string, key: string) => call<void>('POST', `/webinars/${webinarId}/end`, { key }),
  join: (webinarId: string, name: string) => call<ViewerSeat>('POST', `/webinars/${encodeURIComponent(webinarId)}/viewers`, { name }),
  raiseHand: (seat: ViewerSeat, raised: boolean) => call<void>('POST', viewerPath(seat, 'hand'), { key: seat.viewerKey, raised }),
  chat: (seat: ViewerSeat, text: string) => call<void>('POST', viewerPath(seat, 'chat'), { key: seat.viewerKey, text }),
  toStage: (webinarId: string, viewerId: string, key: string) => call<void>('POST', `/webinars/${webinarId}/viewers/${viewerId}/stage`, { key }),
  toAudience: (webinarId: string, viewerId: string, key: string) =>
    call<void>('POST', `/webinars/${webinarId}/viewers/${viewerId}/audience`, { key }),
  /** Gives the seat back as the page goes away (a beacon survives the page's end). */
  leaveOnExit: (seat: ViewerSeat) =>
    navigator.sendBeacon(
      `${DEMO_API_PREFIX}${viewerPath(seat, 'leave')}`,
      new Blob([JSON.stringify({ key: seat.viewerKey })], { type: 'application/json' }),
    ),
  /** The participant's event stream; EventSource reconnects by itself. */
  events(webinarId: string, key: string, onEvent: (event: DemoEvent) => void): EventSource {
    const source = new EventSource(`${DEMO_API_PREFIX}/webinars/${webinarId}/events?key=${encodeURIComponent(key)}`);
    source.onmessage = (message) => onEvent(JSON.parse(message.data as string) as DemoEvent);
    return source;
  },
};

const viewerPath = (seat: ViewerSeat, action: string) => `/webinars/${seat.webinarId}/viewers/${seat.viewerId}/${action}`;
