import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  apiUuid, canonicalColumn, canonicalState, changedColumns, eventId, integrationArn, mapIntegration,
} from '../../services/shared/integration-model.js';

/** The definition of canonical JSON, plainly: object keys sorted at every depth. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

describe('integration model', () => {
  it('keeps null (absent) distinct from empty', () => {
    const state = mapIntegration('us-east-1', 'a1', { IntegrationId: 'i1', Description: '', RequestParameters: {} });
    assert.equal(state.description, '');
    assert.deepEqual(state.request_parameters, {});
    assert.equal(state.connection_id, null);
    assert.equal(state.request_templates, null);
    assert.equal(state.timeout_in_millis, null);
    assert.equal(state.api_gateway_managed, false);
  });

  it('flattens TlsConfig and copies nested response parameter maps', () => {
    const response = { '200': { 'append:header.a': 'b' } };
    const state = mapIntegration('us-east-1', 'a1', { TlsConfig: { ServerNameToVerify: 'x.example.com' }, ResponseParameters: response });
    assert.equal(state.tls_config_server_name_to_verify, 'x.example.com');
    assert.deepEqual(state.response_parameters, response);
    assert.notEqual(state.response_parameters!['200'], response['200']);
  });

  it('gives an API the same UUID v5 every time, different per API', () => {
    assert.equal(apiUuid('us-east-1', 'abc'), apiUuid('us-east-1', 'abc'));
    assert.notEqual(apiUuid('us-east-1', 'abc'), apiUuid('us-east-2', 'abc'));
    assert.match(apiUuid('us-east-1', 'abc'), /^[0-9a-f]{8}-[0-9a-f]{4}-5/);
  });

  it('writes canonical JSON with keys sorted at every depth', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: 2, c: [3, { f: 1, e: 0 }] } }), '{"a":{"c":[3,{"e":0,"f":1}],"d":2},"b":1}');
  });

  it('writes an integration state exactly as canonicalJson does, maps in any key order', () => {
    const states = [
      mapIntegration('us-east-1', 'a1', { IntegrationId: 'i1' }),
      mapIntegration('us-east-1', 'a1', {
        IntegrationId: 'i2', Description: 'say "hi"\n\u2028', TimeoutInMillis: 50, ApiGatewayManaged: true,
        RequestParameters: { 'overwrite:path': '$request.path', 'append:header.b': 'x', 'append:header.a': 'y' },
        RequestTemplates: { 'application/json': '#set($x = 1)\n{"a": "$x"}', 'text/plain': '' },
        ResponseParameters: { '500': { 'overwrite:statuscode': '503' }, '200': { 'remove:header.z': "''", 'append:header.a': 'b' }, '1000': {} },
        TlsConfig: { ServerNameToVerify: 'x.example.com' },
      }),
      mapIntegration('us-east-1', 'a1', { RequestParameters: {}, ResponseParameters: {} }),
    ];
    for (const state of states) {
      assert.equal(canonicalState(state), canonicalJson(state));
      for (const value of Object.values(state)) assert.equal(canonicalColumn(value), canonicalJson(value));
    }
  });

  it('compares maps by content, not key order', () => {
    const before = mapIntegration('r', 'a', { RequestParameters: { x: '1', y: '2' } });
    const same = mapIntegration('r', 'a', { RequestParameters: { y: '2', x: '1' } });
    const changed = mapIntegration('r', 'a', { RequestParameters: { x: '1', y: '3' }, TimeoutInMillis: 50 });
    assert.deepEqual(changedColumns(before, same), []);
    assert.deepEqual(changedColumns(before, changed), ['request_parameters', 'timeout_in_millis']);
  });

  it('derives deterministic event ids and ARNs', () => {
    const arn = integrationArn('eu-west-1', 'api1', 'int1');
    assert.equal(arn, 'arn:aws:apigateway:eu-west-1::/apis/api1/integrations/int1');
    assert.equal(eventId('snapshot:s1', arn), eventId('snapshot:s1', arn));
    assert.notEqual(eventId('snapshot:s1', arn), eventId('snapshot:s2', arn));
  });
});
