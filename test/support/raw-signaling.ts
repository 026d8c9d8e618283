import WebSocket from 'ws';
import { decodeFrame, encodeFrame, FrameType, SdkPingPongType, type OutgoingFrame } from '../../src/signaling/frames.ts';

/** A bare signaling client speaking the wire protocol directly, to send what no SDK would. */
export class RawClient {
  readonly frames: ReturnType<typeof decodeFrame>[] = [];
  closeCode: number | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.frames.push(decodeFrame(data)));
    ws.on('close', (code) => (this.closeCode = code));
  }
  static connect(url: string, token: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, ['_aws_wt_session', token]);
      const client = new RawClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
    });
  }
  send(frame: OutgoingFrame): void {
    this.ws.send(encodeFrame(frame, Date.now()));
  }
  async next(type: number, timeoutMs = 5000): Promise<ReturnType<typeof decodeFrame>> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const index = this.frames.findIndex((f) => f.type === type);
      if (index >= 0) return this.frames.splice(index, 1)[0]!;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no frame of type ${type} within ${timeoutMs} ms`);
  }
  async closed(timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.closeCode === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closeCode ?? -1;
  }
  async ping(id: number): Promise<boolean> {
    this.send({ type: FrameType.PING_PONG, pingPong: { type: SdkPingPongType.PING, pingId: id } });
    const pong = await this.next(FrameType.PING_PONG);
    return pong.pingPong?.pingId === id;
  }
  /** Sends JOIN; resolves with the INDEX that follows JOIN_ACK. */
  async join(): Promise<ReturnType<typeof decodeFrame>> {
    this.send({ type: FrameType.JOIN, join: { protocolVersion: 2, flags: 2 } });
    await this.next(FrameType.JOIN_ACK);
    return this.next(FrameType.INDEX);
  }
}

