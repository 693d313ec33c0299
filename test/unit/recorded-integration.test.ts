import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stillAsRecorded } from '../../services/cloudtrail-listener/recorded-integration.js';

describe('a re-read against the answer CloudTrail recorded', () => {
  const recorded = { IntegrationId: 'i1', IntegrationUri: 'https://x.example.com', RequestParameters: { 'append:header.a': 'b' }, Description: undefined };

  it('holds when every field CloudTrail kept reads the same, whatever else the re-read has', () => {
    assert.equal(stillAsRecorded(recorded, { ...recorded, Description: 'set by nobody we know of', TimeoutInMillis: 30000 }), true);
  });

  it('fails when a kept field changed, a map included, or the integration is gone', () => {
    assert.equal(stillAsRecorded(recorded, { ...recorded, IntegrationUri: 'https://y.example.com' }), false);
    assert.equal(stillAsRecorded(recorded, { ...recorded, RequestParameters: { 'append:header.a': 'c' } }), false);
    assert.equal(stillAsRecorded(recorded, null), false);
  });
});
