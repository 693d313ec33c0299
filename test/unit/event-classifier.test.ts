import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyEvent, type CloudTrailRecord } from '../../services/cloudtrail-listener/event-classifier.js';

function event(eventName: string, requestParameters: unknown, responseElements: unknown = null, extra: Record<string, unknown> = {}) {
  return {
    EventId: 'e-1',
    EventName: eventName,
    CloudTrailEvent: JSON.stringify({
      eventID: 'e-1', eventName, eventSource: 'apigateway.amazonaws.com', eventTime: '2026-11-25T03:00:00Z',
      userIdentity: { type: 'AssumedRole', arn: 'arn:aws:sts::123456789012:assumed-role/Deployer/bob' },
      sourceIPAddress: '203.0.113.20', userAgent: 'terraform/1.9.5', requestParameters, responseElements, ...extra,
    }),
  };
}

type Entry = Parameters<typeof classifyEvent>[0];

/** The record of an event the listener follows, failing on one it ignores or cannot read. */
function followed(entry: Entry): CloudTrailRecord {
  const record = classifyEvent(entry);
  assert.ok(record && 'action' in record, `followed: ${JSON.stringify(record)}`);
  return record;
}

describe('CloudTrail event classification', () => {
  it('maps the integration events of HTTP and WebSocket APIs', () => {
    assert.deepEqual(followed(event('CreateIntegration', { apiId: 'a1', integrationType: 'AWS_PROXY' }, { integrationId: 'i1' })).action,
      { kind: 'integration', apiId: 'a1', integrationId: 'i1', op: 'CREATE' });
    assert.deepEqual(followed(event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1', timeoutInMillis: 50 })).action,
      { kind: 'integration', apiId: 'a1', integrationId: 'i1', op: 'UPDATE' });
    assert.deepEqual(followed(event('DeleteIntegration', { apiId: 'a1', integrationId: 'i1' })).action,
      { kind: 'integration', apiId: 'a1', integrationId: 'i1', op: 'DELETE' });
  });

  it('maps API-wide events to a re-read of the whole API', () => {
    assert.deepEqual(followed(event('DeleteApi', { apiId: 'a1' })).action, { kind: 'api', apiId: 'a1' });
    assert.deepEqual(followed(event('ReimportApi', { apiId: 'a1', body: '...' }, { apiId: 'a1' })).action, { kind: 'api', apiId: 'a1' });
    assert.deepEqual(followed(event('ImportApi', { body: '...' }, { apiId: 'a2' })).action, { kind: 'api', apiId: 'a2' });
    assert.deepEqual(followed(event('CreateApi', { name: 'q', protocolType: 'HTTP', target: 'arn:aws:lambda:us-east-1:1:function:f' }, { apiId: 'a3' })).action, { kind: 'api', apiId: 'a3' });
    // A create whose answer CloudTrail left out (above 100 KB): which integration it made is read from the API.
    assert.deepEqual(followed(event('CreateIntegration', { apiId: 'a1' }, null)).action, { kind: 'api', apiId: 'a1' });
  });

  it('keeps who, from where, with what and when', () => {
    const record = followed(event('DeleteApi', { apiId: 'a1' }));
    assert.equal(record.principalArn, 'arn:aws:sts::123456789012:assumed-role/Deployer/bob');
    assert.equal(record.sourceIp, '203.0.113.20');
    assert.equal(record.userAgent, 'terraform/1.9.5');
    assert.equal(record.eventTime, Date.parse('2026-11-25T03:00:00Z'));
    assert.equal(record.eventId, 'e-1');
  });

  it("keeps the integration a create or update call answered, its user maps' keys as they are", () => {
    const answer = {
      apiId: 'a1', integrationId: 'i1', integrationType: 'HTTP_PROXY', integrationUri: 'https://x.example.com', timeoutInMillis: 1500,
      apiGatewayManaged: false, requestParameters: { 'append:header.X-Trace': '$request.header.id' },
      responseParameters: { '200': { 'overwrite:statuscode': '204' } }, tlsConfig: { serverNameToVerify: 'x.example.com' },
    };
    const recorded = followed(event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1' }, answer)).recorded;
    assert.deepEqual(recorded && Object.fromEntries(Object.entries(recorded).filter(([, value]) => value !== undefined)), {
      IntegrationId: 'i1', IntegrationType: 'HTTP_PROXY', IntegrationUri: 'https://x.example.com', TimeoutInMillis: 1500,
      ApiGatewayManaged: false, RequestParameters: { 'append:header.X-Trace': '$request.header.id' },
      ResponseParameters: { '200': { 'overwrite:statuscode': '204' } }, TlsConfig: { ServerNameToVerify: 'x.example.com' },
    });
    assert.equal(followed(event('CreateIntegration', { apiId: 'a1' }, answer)).recorded?.IntegrationUri, 'https://x.example.com');
  });

  it('keeps no answer that is absent, malformed or for another integration, and none for a deletion', () => {
    const unrecorded = [
      event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1' }, null),
      event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1' }, { integrationId: 'i2', integrationUri: 'https://x.example.com' }),
      event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1' }, { integrationId: 'i1', timeoutInMillis: '1500' }),
      event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1' }, { integrationId: 'i1', requestParameters: ['not', 'a', 'map'] }),
      event('DeleteIntegration', { apiId: 'a1', integrationId: 'i1' }, { integrationId: 'i1' }),
    ];
    for (const candidate of unrecorded) {
      const record = followed(candidate);
      assert.equal(record.recorded, undefined, candidate.CloudTrailEvent.slice(0, 200));
    }
  });

  it('ignores REST API (v1) events, plain CreateApi, failed calls, reads and other services', () => {
    const ignored = [
      event('UpdateIntegration', { restApiId: 'r1', resourceId: 'x', httpMethod: 'GET' }),
      event('DeleteIntegration', { restApiId: 'r1', resourceId: 'x', httpMethod: 'GET' }),
      event('PutIntegration', { restApiId: 'r1', resourceId: 'x', httpMethod: 'GET' }),
      event('CreateRestApi', { name: 'v1' }, { id: 'r1' }),
      event('CreateApi', { name: 'plain', protocolType: 'HTTP' }, { apiId: 'a4' }),
      event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1' }, null, { errorCode: 'AccessDenied' }),
      event('GetIntegrations', { apiId: 'a1' }),
      event('UpdateIntegration', { apiId: 'a1', integrationId: 'i1' }, null, { eventSource: 'ec2.amazonaws.com' }),
    ];
    for (const candidate of ignored) assert.equal(classifyEvent(candidate), null, candidate.CloudTrailEvent.slice(0, 120));
  });

  it('says why it cannot read a followed event that does not name what it changed', () => {
    const unreadable: [Entry, string][] = [
      [{ EventId: 'e-2', EventName: 'UpdateIntegration', CloudTrailEvent: '{not json' }, 'CloudTrailEvent is not JSON'],
      [{ EventId: 'e-3', EventName: 'DeleteIntegration' }, 'CloudTrailEvent is missing'],
      [event('UpdateIntegration', { integrationId: 'i1' }), 'requestParameters.apiId is missing'],
      [event('DeleteApi', {}), 'requestParameters.apiId is missing'],
      [event('ImportApi', { body: '...' }, null), 'responseElements.apiId is missing (CloudTrail left out the answer'],
      [event('CreateApi', { name: 'q', target: 'arn:aws:lambda:us-east-1:1:function:f' }, null), 'responseElements.apiId is missing'],
      [event('DeleteApi', { apiId: 'a1' }, null, { eventTime: undefined }), 'eventTime is missing'],
    ];
    for (const [entry, reason] of unreadable) {
      const result = classifyEvent(entry);
      assert.ok(result && 'unreadable' in result && result.unreadable.startsWith(reason), `${reason}: ${JSON.stringify(result)}`);
    }
  });

  it('reads the API for an integration event that names no integration, and takes the time LookupEvents gives beside a record without one', () => {
    assert.deepEqual(followed(event('UpdateIntegration', { apiId: 'a1' })).action, { kind: 'api', apiId: 'a1' });
    const listed = new Date('2026-11-25T03:00:07Z');
    assert.equal(followed({ ...event('DeleteApi', { apiId: 'a1' }, null, { eventTime: 'yesterday' }), EventTime: listed }).eventTime, listed.getTime());
  });
});
