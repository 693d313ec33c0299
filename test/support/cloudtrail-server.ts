/**
 * A small CloudTrail for tests and the demo: it speaks the JSON 1.1 protocol of LookupEvents closely enough that
 * the SDK client, pointed at it with an endpoint override, cannot tell the difference — paging with NextToken,
 * time-range and attribute filters, and CloudTrail's error shapes (throttling, bad tokens, bad parameters).
 * Events are recorded by whoever makes a change in the emulator, optionally visible only later (CloudTrail
 * delivers minutes late). Given the emulator (`accountsFrom`), it answers each caller with its own account's events,
 * as CloudTrail does; without it, with every account's.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Principal {
  /** userIdentity.arn, e.g. arn:aws:sts::123456789012:assumed-role/Deployer/alice */
  arn: string;
  sourceIp?: string;
  userAgent?: string;
}

export interface EventToRecord {
  region: string;
  eventName: string;
  principal: Principal;
  requestParameters: Record<string, unknown> | null;
  responseElements: Record<string, unknown> | null;
  eventSource?: string;
  readOnly?: boolean;
  errorCode?: string;
  /** @default now */
  eventTime?: Date;
  /** When LookupEvents starts returning it (epoch ms). @default at once */
  visibleAt?: number;
  /** To serve the same event id twice. @default a new UUID */
  eventId?: string;
  accountId?: string;
}

interface StoredEvent {
  /** Order of recording: CloudTrail lists events newest first, also within one second. */
  sequence: number;
  accountId: string;
  region: string;
  visibleAt: number;
  time: number;
  wire: Record<string, unknown>;
}

const TARGET = 'CloudTrail_20131101.LookupEvents';

class CloudTrailError extends Error {
  constructor(readonly type: string, message: string) {
    super(message);
  }
}

function accessKeyOf(principal: Principal): string {
  return `ASIA${Buffer.from(principal.arn).toString('hex').slice(-16).toUpperCase()}`;
}

function usernameOf(arn: string): string {
  return arn.split('/').pop() ?? arn;
}

/**
 * The account an access key belongs to, as the emulator (moto) says: it takes the caller's account from the
 * access key in the Authorization header, and does not check the signature.
 */
async function accountOfAccessKey(emulator: string, accessKeyId: string): Promise<string> {
  const answer = await fetch(`${emulator}/`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: 'Action=GetCallerIdentity&Version=2011-06-15',
  });
  const account = /<Account>(\d{12})<\/Account>/.exec(await answer.text())?.[1];
  if (!account) throw new Error(`the emulator names no account for access key ${accessKeyId} (HTTP ${answer.status})`);
  return account;
}

export async function startCloudTrailServer(options: { port?: number; accountsFrom?: string } = {}) {
  const events: StoredEvent[] = [];
  let throttleNext = 0;
  let lookups = 0;
  let throttled = 0;
  /** LookupEvents calls per second per region beyond which CloudTrail's throttling answer comes back; 0 turns it off. */
  let rateLimit = 0;
  const recentCalls = new Map<string, number[]>();
  const deniedRegions = new Set<string>();

  function record(event: EventToRecord): string {
    const eventId = event.eventId ?? randomUUID();
    const time = Math.floor((event.eventTime ?? new Date()).getTime() / 1000) * 1000; // CloudTrail keeps seconds
    const accountId = event.accountId ?? '123456789012';
    const source = event.eventSource ?? 'apigateway.amazonaws.com';
    const detail = {
      eventVersion: '1.09',
      userIdentity: {
        type: event.principal.arn.includes(':assumed-role/') ? 'AssumedRole' : 'IAMUser',
        principalId: `AROA${usernameOf(event.principal.arn).toUpperCase()}`,
        arn: event.principal.arn,
        accountId,
        accessKeyId: accessKeyOf(event.principal),
      },
      eventTime: new Date(time).toISOString().replace('.000Z', 'Z'),
      eventSource: source,
      eventName: event.eventName,
      awsRegion: event.region,
      sourceIPAddress: event.principal.sourceIp ?? '198.51.100.7',
      userAgent: event.principal.userAgent ?? 'aws-cli/2.17.0 Python/3.11.9 Linux/6.1 exe/x86_64',
      ...(event.errorCode ? { errorCode: event.errorCode, errorMessage: 'failed' } : {}),
      requestParameters: event.requestParameters,
      responseElements: event.responseElements,
      requestID: randomUUID(),
      eventID: eventId,
      readOnly: event.readOnly ?? false,
      eventType: 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: accountId,
      eventCategory: 'Management',
    };
    const apiId = (event.requestParameters?.apiId ?? event.responseElements?.apiId) as string | undefined;
    events.push({
      sequence: events.length,
      accountId,
      region: event.region,
      visibleAt: event.visibleAt ?? 0,
      time,
      wire: {
        EventId: eventId,
        EventName: event.eventName,
        ReadOnly: String(event.readOnly ?? false),
        AccessKeyId: accessKeyOf(event.principal),
        EventTime: time / 1000,
        EventSource: source,
        Username: usernameOf(event.principal.arn),
        Resources: apiId ? [{ ResourceType: 'AWS::ApiGatewayV2::Api', ResourceName: apiId }] : [],
        CloudTrailEvent: JSON.stringify(detail),
      },
    });
    return eventId;
  }

  function attributeMatches(wire: Record<string, unknown>, key: string, value: string): boolean {
    switch (key) {
      case 'EventId': case 'EventName': case 'EventSource': case 'Username': case 'ReadOnly': case 'AccessKeyId':
        return wire[key] === value;
      case 'ResourceName': case 'ResourceType':
        return (wire.Resources as Record<string, string>[]).some((r) => r[key] === value);
      default:
        throw new CloudTrailError('InvalidLookupAttributesException', `Lookup attribute key ${key} is not valid.`);
    }
  }

  const accounts = new Map<string, Promise<string>>();
  /** The caller's account, when the server tells accounts apart. */
  function callerAccount(authorization: string): Promise<string | undefined> {
    const accessKeyId = /Credential=([^/]+)\//.exec(authorization)?.[1];
    if (!options.accountsFrom || !accessKeyId) return Promise.resolve(undefined);
    if (!accounts.has(accessKeyId)) accounts.set(accessKeyId, accountOfAccessKey(options.accountsFrom, accessKeyId));
    return accounts.get(accessKeyId)!;
  }

  function lookupEvents(region: string, account: string | undefined, input: Record<string, unknown>) {
    const attributes = (input.LookupAttributes as { AttributeKey: string; AttributeValue: string }[] | undefined) ?? [];
    if (attributes.length > 1) throw new CloudTrailError('InvalidLookupAttributesException', 'You can specify only one lookup attribute.');
    const maxResults = input.MaxResults === undefined ? 50 : Number(input.MaxResults);
    if (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > 50) throw new CloudTrailError('InvalidMaxResultsException', 'MaxResults must be between 1 and 50.');
    const start = input.StartTime === undefined ? 0 : Number(input.StartTime) * 1000;
    const end = input.EndTime === undefined ? Date.now() : Number(input.EndTime) * 1000;
    if (start > end) throw new CloudTrailError('InvalidTimeRangeException', 'Start time must be before end time.');
    const fingerprint = JSON.stringify([account, region, attributes, start, end]);
    let offset = 0;
    if (input.NextToken !== undefined) {
      try {
        const token = JSON.parse(Buffer.from(String(input.NextToken), 'base64').toString()) as { offset: number; fingerprint: string };
        if (token.fingerprint !== fingerprint || !Number.isInteger(token.offset)) throw new Error('mismatch');
        offset = token.offset;
      } catch {
        throw new CloudTrailError('InvalidNextTokenException', 'Invalid NextToken.');
      }
    }
    const now = Date.now();
    const matching = events
      .filter((e) => e.region === region && (account === undefined || e.accountId === account) && e.visibleAt <= now && e.time >= start && e.time <= end)
      .filter((e) => attributes.every((a) => attributeMatches(e.wire, a.AttributeKey, a.AttributeValue)))
      .sort((a, b) => b.time - a.time || b.sequence - a.sequence);
    const page = matching.slice(offset, offset + maxResults);
    const next = offset + maxResults < matching.length
      ? Buffer.from(JSON.stringify({ offset: offset + maxResults, fingerprint })).toString('base64')
      : undefined;
    return { Events: page.map((e) => e.wire), ...(next ? { NextToken: next } : {}) };
  }

  function rateExceeded(region: string): boolean {
    if (rateLimit <= 0) return false;
    const now = Date.now();
    const calls = (recentCalls.get(region) ?? []).filter((t) => now - t < 1000);
    calls.push(now);
    recentCalls.set(region, calls);
    return calls.length > rateLimit;
  }

  function reply(response: ServerResponse, status: number, body: unknown, errorType?: string): void {
    const headers: Record<string, string> = { 'Content-Type': 'application/x-amz-json-1.1', 'x-amzn-RequestId': randomUUID() };
    if (errorType) headers['x-amzn-ErrorType'] = errorType;
    response.writeHead(status, headers).end(JSON.stringify(body));
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const target = String(request.headers['x-amz-target'] ?? '');
    const authorization = String(request.headers.authorization ?? '');
    const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/cloudtrail\//.exec(authorization)?.[1];
    if (request.method !== 'POST' || !target.endsWith(TARGET)) {
      reply(response, 400, { __type: 'UnknownOperationException', message: `Operation ${target} is not supported by this test server.` }, 'UnknownOperationException');
      return;
    }
    if (!region) {
      reply(response, 403, { __type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' }, 'MissingAuthenticationTokenException');
      return;
    }
    lookups++;
    if (deniedRegions.has(region)) {
      reply(response, 400, { __type: 'AccessDeniedException', Message: `User is not authorized to perform: cloudtrail:LookupEvents in ${region}` }, 'AccessDeniedException');
      return;
    }
    if (throttleNext > 0 || rateExceeded(region)) {
      if (throttleNext > 0) throttleNext--;
      throttled++;
      reply(response, 400, { __type: 'ThrottlingException', message: 'Rate exceeded' }, 'ThrottlingException');
      return;
    }
    try {
      reply(response, 200, lookupEvents(region, await callerAccount(authorization), JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>));
    } catch (error) {
      if (!(error instanceof CloudTrailError)) throw error;
      reply(response, 400, { __type: error.type, Message: error.message }, error.type);
    }
  }

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: Error) => reply(response, 500, { __type: 'InternalFailure', message: error.message }, 'InternalFailure'));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    record,
    /** The next n LookupEvents calls answer with CloudTrail's ThrottlingException. */
    throttleNext(n: number): void {
      throttleNext = n;
    },
    /** LookupEvents in this region answers AccessDeniedException until allowed again. */
    deny(region: string, denied = true): void {
      if (denied) deniedRegions.add(region);
      else deniedRegions.delete(region);
    },
    setRateLimit(callsPerSecond: number): void {
      rateLimit = callsPerSecond;
    },
    stats: () => ({ lookups, throttled, events: events.length }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type CloudTrailServer = Awaited<ReturnType<typeof startCloudTrailServer>>;
