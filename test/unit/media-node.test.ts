import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { Topology } from '../../src/cluster/topology.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

describe('Topology', () => {
  test('knows which node this process is, and fills in its URL once the port is bound', () => {
    const topology = new Topology(
      [
        { id: 'here', publicUrl: 'http://placeholder', regions: '*' },
        { id: 'eu', publicUrl: 'https://media-eu.example.com', regions: ['eu-west-1'] },
      ],
      'here',
    );
    assert.ok(topology.isLocal('here'));
    assert.equal(topology.isLocal('eu'), false);
    topology.setLocalPublicUrl('http://127.0.0.1:8123');
    assert.equal(topology.localNode.publicUrl, 'http://127.0.0.1:8123');
    assert.equal(topology.node('eu')!.publicUrl, 'https://media-eu.example.com', 'other nodes are left as they were');
    assert.equal(topology.placeMeeting('eu-west-1', 7)!.id, 'eu');
    assert.equal(topology.placeMeeting('us-east-1', 7)!.id, 'here');
  });

  test('refuses a topology without this process, or with a node id twice', () => {
    const node = { id: 'a', publicUrl: 'http://a', regions: '*' as const };
    assert.throws(() => new Topology([node], 'b'), /no media node b/);
    assert.throws(() => new Topology([node, node], 'a'), /unique/);
    assert.throws(() => new Topology([], 'a'), /at least one/);
  });
});

describe('the signaling gateway checks MediaNodeId', () => {
  let server: TestAmphi;
  before(async () => {
    // This process serves every region but eu-west-1, which another node serves.
    const topology = new Topology(
      [
        { id: 'here', publicUrl: 'http://127.0.0.1', regions: '*' },
        { id: 'eu', publicUrl: 'https://media-eu.invalid', regions: ['eu-west-1'] },
      ],
      'here',
    );
    server = await startTestAmphi({ start: { topology } });
  });
  after(() => server.stop());

  const meetingIn = async (MediaRegion: string): Promise<Meeting> =>
    (await server.client.send(new CreateMeetingCommand({ MediaRegion, ExternalMeetingId: `node-${MediaRegion}` }))).Meeting!;
  const tokenFor = async (meeting: Meeting) =>
    (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'traveller' }))).Attendee!.JoinToken!;

  test('a meeting placed on this node is served, at the URL bound at start', async () => {
    const meeting = await meetingIn('us-east-1');
    const signalingUrl = meeting.MediaPlacement!.SignalingUrl!;
    assert.equal(signalingUrl, `${server.amphi.publicUrl.replace(/^http/, 'ws')}/control/${meeting.MeetingId}`);
    const client = await RawClient.connect(signalingUrl, await tokenFor(meeting));
    await client.join();
    client.ws.close();
  });

  test('a meeting placed on another node is relayed there: an unreachable node is a 502', async () => {
    const meeting = await meetingIn('eu-west-1');
    assert.match(meeting.MediaPlacement!.SignalingUrl!, /^wss:\/\/media-eu\.invalid\/control\//, 'clients are sent to its node');
    // A client that comes here anyway (a load balancer in front of several nodes) is relayed to the meeting's node.
    const here = `${server.amphi.publicUrl.replace(/^http/, 'ws')}/control/${meeting.MeetingId}`;
    await assert.rejects(RawClient.connect(here, await tokenFor(meeting)), /HTTP 502/);
    assert.equal(server.amphi.signaling.conference(meeting.MeetingId!), undefined, 'no conference was started for it');
  });
});
