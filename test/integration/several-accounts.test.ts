import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiGatewayV2Client, DeleteApiCommand } from '@aws-sdk/client-apigatewayv2';
import {
  CreateAccountCommand, CreateOrganizationCommand, CreateOrganizationalUnitCommand, ListRootsCommand, MoveAccountCommand, OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { AccessRow } from '../../cli/access-check.js';
import type { Pipeline } from '../../cli/pipeline.js';
import { resetEmulator, seedSampleInventory, type SampleApi } from '../../stack/sample-inventory.js';
import { apigwStream } from '../support/cli.js';
import { startCloudTrailServer, type CloudTrailServer } from '../support/cloudtrail-server.js';
import { assumeRoleDenied, startFaultProxy } from '../support/fault-proxy.js';
import { awsClient, motoEndpoint, rows, runListener, testEnvironment, waitFor } from '../support/harness.js';
import { PRINCIPALS, createRecordingClient } from '../support/recorded-changes.js';

const OWN_ACCOUNT = '123456789012';
const OTHER_ACCOUNT = '111111111111';
const readerRole = (account: string) => `arn:aws:iam::${account}:role/apigw-reader`;

/** Credentials of the other account's role, as a process of that account gets them (the emulator keeps accounts apart). */
async function otherAccountCredentials(region: string) {
  const sts = new STSClient({ region, endpoint: motoEndpoint });
  const { Credentials } = await sts.send(new AssumeRoleCommand({ RoleArn: readerRole(OTHER_ACCOUNT), RoleSessionName: 'apigw-stream' }));
  sts.destroy();
  return { accessKeyId: Credentials!.AccessKeyId!, secretAccessKey: Credentials!.SecretAccessKey!, sessionToken: Credentials!.SessionToken! };
}

/** Live integrations per account in the current-state table. */
async function liveByAccount(sink: Pipeline, env: ReturnType<typeof testEnvironment>) {
  const live = await rows<{ account_id: string; n: string }>(sink,
    `SELECT account_id, count() AS n FROM ${env.table('aws_apigatewayv2_api_integrations')} FINAL GROUP BY account_id ORDER BY account_id`);
  return Object.fromEntries(live.map((row) => [row.account_id, Number(row.n)]));
}

/**
 * A new account in the emulator's organization, with one HTTP API, and a client that changes it (kept in `clients`,
 * for the describe's `after` to destroy).
 */
async function newOrganizationAccount(organizations: OrganizationsClient, region: string, name: string, clients: ApiGatewayV2Client[]) {
  const { CreateAccountStatus } = await organizations.send(new CreateAccountCommand({ AccountName: name, Email: `${name}@example.com` }));
  const accountId = CreateAccountStatus!.AccountId!;
  const sts = new STSClient({ region, endpoint: motoEndpoint });
  const { Credentials } = await sts.send(new AssumeRoleCommand({ RoleArn: readerRole(accountId), RoleSessionName: 'seed' }));
  sts.destroy();
  const client = new ApiGatewayV2Client({ region, endpoint: motoEndpoint, credentials: { accessKeyId: Credentials!.AccessKeyId!, secretAccessKey: Credentials!.SecretAccessKey!, sessionToken: Credentials!.SessionToken! } });
  clients.push(client);
  const [api] = await seedSampleInventory(client, { httpApis: 1, websocketApis: 0, prefix: name });
  return { accountId, client, api: api! };
}

/** Makes the emulator's default account the management account of an organization, unless it is one already. */
async function ensureOrganization(organizations: OrganizationsClient): Promise<void> {
  await organizations.send(new CreateOrganizationCommand({ FeatureSet: 'ALL' })).catch((error: Error) => {
    if (error.name !== 'AlreadyInOrganizationException') throw error;
  });
}

const count = (apis: SampleApi[]) => apis.reduce((n, api) => n + api.integrationIds.length, 0);

describe('several accounts: one snapshotter per account, one topic, one sink', { timeout: 180_000 }, () => {
  const REGION = 'eu-south-1';
  const first = awsClient(REGION);
  let second: ApiGatewayV2Client;
  let secondCredentials: Record<string, string>;
  let env: ReturnType<typeof testEnvironment>;
  let sink: Pipeline;
  let firstApis: SampleApi[];
  let secondApis: SampleApi[];

  const snapshotAs = async (credentials: Record<string, string>) => {
    const result = await apigwStream(['snapshot', '--once'], { ...env.env, ...credentials });
    assert.equal(result.status, 0, result.stderr);
    await sink.sink!.waitForCatchUp();
  };

  before(async () => {
    await resetEmulator(motoEndpoint);
    const credentials = await otherAccountCredentials(REGION);
    secondCredentials = { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_SESSION_TOKEN: credentials.sessionToken };
    second = new ApiGatewayV2Client({ region: REGION, endpoint: motoEndpoint, credentials });
    firstApis = await seedSampleInventory(first, { httpApis: 2, websocketApis: 1, prefix: 'first' });
    secondApis = await seedSampleInventory(second, { httpApis: 1, websocketApis: 1, prefix: 'second' });
    env = testEnvironment({ region: REGION });
    sink = await env.open({ sink: true });
  });
  after(async () => {
    await sink?.close();
    first.destroy();
    second?.destroy();
    await env?.cleanup();
  });

  it('keeps each account\'s integrations under its own id, and a snapshot of one deletes nothing of the other', async () => {
    await snapshotAs({});
    await snapshotAs(secondCredentials);
    assert.deepEqual(await liveByAccount(sink, env), { [OWN_ACCOUNT]: count(firstApis), [OTHER_ACCOUNT]: count(secondApis) });

    // An API goes in the second account; only that account's next snapshot sees it, and the first's deletes nothing.
    const gone = secondApis.find((api) => api.integrationIds.length > 0)!;
    await second.send(new DeleteApiCommand({ ApiId: gone.apiId }));
    await snapshotAs({});
    assert.deepEqual(await liveByAccount(sink, env), { [OWN_ACCOUNT]: count(firstApis), [OTHER_ACCOUNT]: count(secondApis) });
    await snapshotAs(secondCredentials);
    assert.deepEqual(await liveByAccount(sink, env), { [OWN_ACCOUNT]: count(firstApis), [OTHER_ACCOUNT]: count(secondApis) - gone.integrationIds.length });
  });
});

describe('several accounts in one process, each read through its role (AWS_ROLE_ARNS)', { timeout: 180_000 }, () => {
  const REGION = 'ap-east-1';
  const own = awsClient(REGION);
  let other: ApiGatewayV2Client;
  // CloudTrail answers each account with its own events only: the emulator says whose credentials call.
  let trail: CloudTrailServer;
  let env: ReturnType<typeof testEnvironment>;
  let pipeline: Pipeline;
  let listener: ReturnType<typeof runListener>;
  let ownApis: SampleApi[];
  let otherApis: SampleApi[];

  before(async () => {
    other = new ApiGatewayV2Client({ region: REGION, endpoint: motoEndpoint, credentials: await otherAccountCredentials(REGION) });
    ownApis = await seedSampleInventory(own, { httpApis: 1, websocketApis: 1, prefix: 'own' });
    otherApis = await seedSampleInventory(other, { httpApis: 2, websocketApis: 0, prefix: 'other' });
    trail = await startCloudTrailServer({ accountsFrom: motoEndpoint });
    env = testEnvironment({ region: REGION, extra: {
      AWS_ROLE_ARNS: [readerRole(OWN_ACCOUNT), readerRole(OTHER_ACCOUNT)].join(','),
      AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint,
      APIGW_LISTENER_POLL_SECONDS: '0.3',
      APIGW_LISTENER_LOOKBACK_HOURS: '1',
    } });
    pipeline = await env.open({ snapshot: true, listen: true, sink: true });
  });
  after(async () => {
    await listener?.stop();
    await pipeline?.close();
    await trail?.close();
    own.destroy();
    other?.destroy();
    await env?.cleanup();
  });

  it('snapshots every account, and a snapshot deletes only what went from the account it read', async () => {
    const result = await pipeline.snapshotter!.runOnce();
    assert.deepEqual(result.regions.map((r) => [r.accountId, r.region, r.completed]), [[OWN_ACCOUNT, REGION, true], [OTHER_ACCOUNT, REGION, true]]);
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await liveByAccount(pipeline, env), { [OWN_ACCOUNT]: count(ownApis), [OTHER_ACCOUNT]: count(otherApis) });

    const gone = otherApis[0]!;
    await other.send(new DeleteApiCommand({ ApiId: gone.apiId }));
    await pipeline.snapshotter!.runOnce();
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await liveByAccount(pipeline, env), { [OWN_ACCOUNT]: count(ownApis), [OTHER_ACCOUNT]: count(otherApis) - gone.integrationIds.length });
  });

  it('follows each account\'s CloudTrail, and credits each change to its own account and principal', async () => {
    listener = runListener(pipeline);
    const otherDeployer = { ...PRINCIPALS.bob, arn: `arn:aws:sts::${OTHER_ACCOUNT}:assumed-role/Deployer/bob` };
    const ownChange = createRecordingClient({ aws: own, trail, region: REGION });
    const otherChange = createRecordingClient({ aws: other, trail, region: REGION });
    const ownTarget = ownApis.find((api) => api.integrationIds.length > 0)!;
    const otherTarget = otherApis[1]!;
    const ownEvent = await ownChange.updateIntegration(PRINCIPALS.alice, { ApiId: ownTarget.apiId, IntegrationId: ownTarget.integrationIds[0], TimeoutInMillis: 1111 });
    const otherEvent = await otherChange.updateIntegration(otherDeployer, { ApiId: otherTarget.apiId, IntegrationId: otherTarget.integrationIds[0], TimeoutInMillis: 2222 }, { accountId: OTHER_ACCOUNT });

    const fromCloudTrail = () => rows<{ account_id: string; aws_api_id: string; operation: string; timeout_in_millis: number; principal_arn: string; cloudtrail_event_id: string }>(pipeline,
      `SELECT account_id, aws_api_id, operation, toUInt32(JSONExtractInt(after, 'timeout_in_millis')) AS timeout_in_millis, principal_arn, cloudtrail_event_id FROM ${env.table('aws_apigatewayv2_api_integrations_history')}
       WHERE cloudtrail_event_id IS NOT NULL ORDER BY account_id`);
    const changes = await waitFor('both accounts\' changes in history', async () => {
      const found = await fromCloudTrail();
      return found.length >= 2 ? found : undefined;
    });
    // A listener that read another account's events would re-read their integrations in its own account, find
    // nothing there, and write deletions: exactly two rows, each in its own account, say it did not.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(await fromCloudTrail(), changes);
    assert.deepEqual(changes, [
      { account_id: OTHER_ACCOUNT, aws_api_id: otherTarget.apiId, operation: 'UPDATE', timeout_in_millis: 2222, principal_arn: otherDeployer.arn, cloudtrail_event_id: otherEvent },
      { account_id: OWN_ACCOUNT, aws_api_id: ownTarget.apiId, operation: 'UPDATE', timeout_in_millis: 1111, principal_arn: PRINCIPALS.alice.arn, cloudtrail_event_id: ownEvent },
    ]);
    assert.deepEqual(await liveByAccount(pipeline, env), { [OWN_ACCOUNT]: count(ownApis), [OTHER_ACCOUNT]: count(otherApis) - otherApis[0]!.integrationIds.length });
  });
  it('reads at most APIGW_SNAPSHOT_REGIONS_AT_ONCE regions at once, whatever the number of accounts', async () => {
    // Two accounts in three regions each, one call at a time per region; every answer takes 100 ms longer.
    const proxy = await startFaultProxy(motoEndpoint, (request) => (request.url?.startsWith('/v2/') ? { delayMs: 100 } : 'forward'), { counted: '/v2/' });
    const bounded = testEnvironment({ region: `${REGION},eu-west-1,sa-east-1`, extra: {
      AWS_ROLE_ARNS: [readerRole(OWN_ACCOUNT), readerRole(OTHER_ACCOUNT)].join(','),
      AWS_ENDPOINT_URL: proxy.url,
      APIGW_SNAPSHOT_CONCURRENCY: '1',
      APIGW_SNAPSHOT_REGIONS_AT_ONCE: '2',
    } });
    const snapshotter = await bounded.open({ snapshot: true });
    try {
      const result = await snapshotter.snapshotter!.runOnce();
      assert.equal(result.regions.filter((r) => r.completed).length, 6, 'every region of both accounts read');
      assert.equal(result.regions.find((r) => r.accountId === OTHER_ACCOUNT && r.region === REGION)!.integrations, count(otherApis) - otherApis[0]!.integrationIds.length);
      assert.equal(proxy.peakInFlight(), 2, 'two calls at once: one in each of two regions');
    } finally {
      await snapshotter.close();
      await proxy.close();
      await bounded.cleanup();
    }
  });
});

describe('every account of the organization, each read through the same role (AWS_ORGANIZATION_ROLE)', { timeout: 180_000 }, () => {
  const REGION = 'me-south-1';
  // The emulator's default account is the organization's management account.
  const organizations = new OrganizationsClient({ region: 'us-east-1', endpoint: motoEndpoint });
  let trail: CloudTrailServer;
  let env: ReturnType<typeof testEnvironment>;
  let pipeline: Pipeline;
  let listener: ReturnType<typeof runListener>;
  const clients: ApiGatewayV2Client[] = [];

  const newMemberAccount = (name: string) => newOrganizationAccount(organizations, REGION, name, clients);

  before(async () => {
    await ensureOrganization(organizations);
    trail = await startCloudTrailServer({ accountsFrom: motoEndpoint });
    env = testEnvironment({ region: REGION, extra: {
      AWS_ORGANIZATION_ROLE: 'apigw-reader',
      AWS_ORGANIZATION_REFRESH_SECONDS: '1',
      AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint,
      APIGW_LISTENER_POLL_SECONDS: '0.3',
      APIGW_LISTENER_LOOKBACK_HOURS: '1',
    } });
  });
  after(async () => {
    await listener?.stop();
    await pipeline?.close();
    await trail?.close();
    organizations.destroy();
    for (const client of clients) client.destroy();
    await env?.cleanup();
  });

  it('snapshots every active account, and an account that joins from the next listing on', async () => {
    const first = await newMemberAccount('payments');
    pipeline = await env.open({ snapshot: true, listen: true, sink: true });
    const before = await pipeline.snapshotter!.runOnce();
    assert.deepEqual(before.regions.map((r) => [r.accountId, r.completed]), [[OWN_ACCOUNT, true], [first.accountId, true]].sort());
    await pipeline.sink!.waitForCatchUp();
    assert.equal((await liveByAccount(pipeline, env))[first.accountId], count([first.api]));

    const joined = await newMemberAccount('search');
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the listing is a second old: listed again
    const after = await pipeline.snapshotter!.runOnce();
    assert.deepEqual(after.regions.map((r) => r.accountId), [OWN_ACCOUNT, first.accountId, joined.accountId].sort());
    const [listedAt] = (await env.metrics.organizationListed.get()).values;
    assert.ok(Date.now() / 1000 - listedAt!.value < 5, 'the last listing\'s time is now');
    await pipeline.sink!.waitForCatchUp();
    assert.equal((await liveByAccount(pipeline, env))[joined.accountId], count([joined.api]));
  });

  it('follows the CloudTrail of an account that joins while it runs', async () => {
    listener = runListener(pipeline);
    const joined = await newMemberAccount('billing');
    const changes = createRecordingClient({ aws: joined.client, trail, region: REGION });
    const principal = { ...PRINCIPALS.alice, arn: `arn:aws:sts::${joined.accountId}:assumed-role/PlatformEngineer/alice` };
    const eventId = await changes.updateIntegration(principal, { ApiId: joined.api.apiId, IntegrationId: joined.api.integrationIds[0], TimeoutInMillis: 3333 }, { accountId: joined.accountId });
    const [row] = await waitFor('the joined account\'s change in history', async () => {
      const found = await rows<{ account_id: string; principal_arn: string; operation: string }>(pipeline,
        `SELECT account_id, principal_arn, operation FROM ${env.table('aws_apigatewayv2_api_integrations_history')} WHERE cloudtrail_event_id = {id:String}`, { id: eventId });
      return found.length > 0 ? found : undefined;
    });
    // No snapshot has read the account yet: to the tables, this is the integration's first version.
    assert.deepEqual(row, { account_id: joined.accountId, principal_arn: principal.arn, operation: 'CREATE' });
  });

  it('a snapshotter running on its interval reads an account that joined at once, not at its next snapshot', async () => {
    const stop = new AbortController();
    const running = pipeline.snapshotter!.runForever(3600, stop.signal);
    try {
      await waitFor('the first snapshot', async () => pipeline.snapshotter!.health().last_snapshot);
      // Made in the emulator only, with no CloudTrail event: only a snapshot can bring its integrations.
      const joined = await newMemberAccount('catalog');
      await waitFor('the joined account\'s integrations in the current state', async () =>
        (await liveByAccount(pipeline, env))[joined.accountId] === count([joined.api]));
      assert.equal(pipeline.snapshotter!.health().ok, true);
    } finally {
      stop.abort();
      await running;
    }
  });
});

describe('roles assumed with an external id, and an organization account whose role cannot be assumed yet', { timeout: 180_000 }, () => {
  const REGION = 'ap-south-2';
  const EXTERNAL_ID = 'apigw-7f3a9c';
  const organizations = new OrganizationsClient({ region: 'us-east-1', endpoint: motoEndpoint });
  const logLines: string[] = [];
  // An account whose role STS refuses, as it does a role not deployed there yet.
  let withoutRole: string | undefined;
  // The member account the tests make.
  let memberId: string;
  // The emulator assumes any role; in front of it, an STS whose roles all ask for the external id.
  let sts: Awaited<ReturnType<typeof startFaultProxy>>;
  let trail: CloudTrailServer;
  let env: ReturnType<typeof testEnvironment>;
  let pipeline: Pipeline;
  const clients: ApiGatewayV2Client[] = [];

  before(async () => {
    await resetEmulator(motoEndpoint);
    await ensureOrganization(organizations);
    trail = await startCloudTrailServer();
    sts = await startFaultProxy(motoEndpoint, (_request, body) => {
      const call = new URLSearchParams(body);
      if (call.get('Action') !== 'AssumeRole') return 'forward';
      const role = call.get('RoleArn')!;
      return call.get('ExternalId') !== EXTERNAL_ID || (withoutRole && role.includes(`::${withoutRole}:`)) ? assumeRoleDenied(role) : 'forward';
    });
    env = testEnvironment({ region: REGION, logLines, extra: {
      AWS_ENDPOINT_URL: sts.url,
      AWS_ORGANIZATION_ROLE: 'apigw-reader',
      AWS_ROLE_EXTERNAL_ID: EXTERNAL_ID,
      AWS_ORGANIZATION_REFRESH_SECONDS: '1',
    } });
  });
  after(async () => {
    await pipeline?.close();
    await sts?.close();
    await trail?.close();
    organizations.destroy();
    for (const client of clients) client.destroy();
    await env?.cleanup();
  });

  it('without the external id, no role is assumed, and the start stops naming the organization\'s role', async () => {
    const result = await apigwStream(['snapshot', '--once'], { ...env.env, AWS_ROLE_EXTERNAL_ID: '' });
    assert.equal(result.status, 3, result.stderr); // a dependency that refuses
    assert.equal(result.stderr.split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /^apigw-stream: AWS_ORGANIZATION_ROLE: cannot assume apigw-reader in any of the organization's 1 active accounts \(123456789012: User: .* is not authorized to perform: sts:AssumeRole/);
  });

  it('leaves out an account whose role cannot be assumed, says so, and reads it once a later listing can', async () => {
    const member = await newOrganizationAccount(organizations, REGION, 'ledger', clients);
    withoutRole = member.accountId;
    pipeline = await env.open({ snapshot: true, sink: true });
    const first = await pipeline.snapshotter!.runOnce();
    assert.deepEqual(first.regions.map((r) => r.accountId), [OWN_ACCOUNT]);
    const gauge = async () => Object.fromEntries((await env.metrics.accounts.get()).values.map((v) => [v.labels.state, v.value]));
    assert.deepEqual(await gauge(), { read: 1, unreadable: 1, excluded: 0 });
    const warnings = logLines.map((line) => JSON.parse(line) as { msg: string; unreadable?: { accountId: string }[] }).filter((line) => line.unreadable);
    assert.deepEqual(warnings.map((w) => [w.msg, w.unreadable!.map((u) => u.accountId)]),
      [['cannot assume apigw-reader in 1 of the organization\'s 2 active accounts: those are not read until a later listing can', [member.accountId]]]);

    withoutRole = undefined; // the role is deployed
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the listing is a second old: listed again
    const second = await pipeline.snapshotter!.runOnce();
    assert.deepEqual(second.regions.map((r) => [r.accountId, r.completed]), [[OWN_ACCOUNT, true], [member.accountId, true]].sort());
    assert.deepEqual(await gauge(), { read: 2, unreadable: 0, excluded: 0 });
    await pipeline.sink!.waitForCatchUp();
    assert.deepEqual(await liveByAccount(pipeline, env), { [member.accountId]: count([member.api]) });
    memberId = member.accountId;
  });

  it('neither reads nor tries an excluded account, and names an excluded id that is no account of the organization', async () => {
    withoutRole = memberId; // its role is gone again: excluded, it is not tried, so nothing warns about it
    const result = await apigwStream(['snapshot', '--once'], { ...env.env, AWS_ORGANIZATION_EXCLUDE_ACCOUNTS: `${memberId},999999999999` });
    assert.equal(result.status, 0, result.stderr);
    const said = result.stderr.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg);
    assert.deepEqual(said, ['AWS_ORGANIZATION_EXCLUDE_ACCOUNTS names 999999999999, not an active account of the organization']);
  });

  it('accounts: checks every region of every account it would read, and lists the accounts it leaves out', async () => {
    const DENIED_REGION = 'ap-south-1';
    trail.deny(DENIED_REGION); // the role may not call LookupEvents there
    const accounts = async (extra: Record<string, string> = {}) => {
      const result = await apigwStream(['accounts', '--format', 'json'], {
        ...env.env, AWS_REGIONS: `${REGION},${DENIED_REGION}`, AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, ...extra,
      });
      const rows = result.status === null ? [] : JSON.parse(result.stdout) as AccessRow[];
      return { status: result.status, stderr: result.stderr, rows: rows.map((r) => [r.account_id, r.region, r.state, r.problem]) };
    };
    // The member's role is still refused (previous test).
    const checked = await accounts();
    assert.equal(checked.status, 1, checked.stderr);
    assert.deepEqual(checked.rows, [
      [OWN_ACCOUNT, REGION, 'ok', null],
      [OWN_ACCOUNT, DENIED_REGION, 'failing', `LookupEvents: User is not authorized to perform: cloudtrail:LookupEvents in ${DENIED_REGION}`],
      [memberId, '*', 'unreadable', `User: arn:aws:iam::123456789012:user/moto is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::${memberId}:role/apigw-reader`],
    ]);

    trail.deny(DENIED_REGION, false);
    const excluded = await accounts({ AWS_ORGANIZATION_EXCLUDE_ACCOUNTS: memberId });
    assert.equal(excluded.status, 0, excluded.stderr);
    assert.deepEqual(excluded.rows, [[OWN_ACCOUNT, REGION, 'ok', null], [OWN_ACCOUNT, DENIED_REGION, 'ok', null], [memberId, '*', 'excluded', null]]);
  });

  it('reads only the accounts of the units AWS_ORGANIZATION_UNITS names, and of the units nested in them', async () => {
    const { Roots } = await organizations.send(new ListRootsCommand({}));
    const unit = async (name: string, parent: string) =>
      (await organizations.send(new CreateOrganizationalUnitCommand({ ParentId: parent, Name: name }))).OrganizationalUnit!.Id!;
    const payments = await unit('payments', Roots![0]!.Id!);
    const paymentsEu = await unit('payments-eu', payments);
    const inUnit = async (name: string, parent: string) => {
      const account = await newOrganizationAccount(organizations, REGION, name, clients);
      await organizations.send(new MoveAccountCommand({ AccountId: account.accountId, SourceParentId: Roots![0]!.Id!, DestinationParentId: parent }));
      return account.accountId;
    };
    const [cards, sepa] = [await inUnit('cards', payments), await inUnit('sepa', paymentsEu)];
    const accounts = (units: string) => apigwStream(['accounts', '--format', 'json'], { ...env.env, AWS_ENDPOINT_URL_CLOUDTRAIL: trail.endpoint, AWS_ORGANIZATION_UNITS: units });

    const read = await accounts(payments);
    assert.equal(read.status, 0, `${read.stdout}\n${read.stderr}`);
    assert.deepEqual((JSON.parse(read.stdout) as AccessRow[]).map((r) => [r.account_id, r.state]), [[cards, 'ok'], [sepa, 'ok']].sort());

    const unknown = await accounts('ou-zzzz-zzzzzzzz');
    assert.equal(unknown.status, 3, unknown.stderr);
    assert.equal(unknown.stderr.split('\n').length, 1, unknown.stderr);
    assert.match(unknown.stderr, /^apigw-stream: AWS_ORGANIZATION_UNITS: .*check the unit ids/);
  });
});
