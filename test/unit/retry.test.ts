import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeError, isRetriable } from '../../services/shared/errors.js';
import { RetriesExhaustedError, createRetry } from '../../services/shared/retry.js';

const fast = { initialDelayMs: 1, maxDelayMs: 2 };

describe('retry with backoff', () => {
  it('retries retriable errors until the operation succeeds', async () => {
    const retry = createRetry({ ...fast, retries: 5 });
    let calls = 0;
    const result = await retry(async () => {
      if (++calls < 3) throw Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
      return 'done';
    });
    assert.equal(result, 'done');
    assert.equal(calls, 3);
  });

  it('throws a non-retriable error at once', async () => {
    let calls = 0;
    await assert.rejects(createRetry(fast)(async () => {
      calls++;
      throw new Error('validation failed');
    }), /validation failed/);
    assert.equal(calls, 1);
  });

  it('wraps the last error when the attempts run out', async () => {
    const retry = createRetry({ ...fast, retries: 2 });
    await assert.rejects(retry(async () => { throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }); }), (error: unknown) => {
      assert.ok(error instanceof RetriesExhaustedError);
      assert.equal(error.attempts, 3);
      return true;
    });
  });
});

describe('error classification', () => {
  it('walks the cause chain', () => {
    assert.equal(isRetriable(new Error('outer', { cause: Object.assign(new Error('inner'), { code: 'ECONNRESET' }) })), true);
  });
  it('knows AWS throttling, server errors and client errors', () => {
    assert.equal(isRetriable({ name: 'TooManyRequestsException' }), true);
    assert.equal(isRetriable({ name: 'X', $metadata: { httpStatusCode: 503 } }), true);
    assert.equal(isRetriable({ name: 'BadRequestException', $metadata: { httpStatusCode: 400 } }), false);
  });
  it('knows ClickHouse codes and kafkajs flags', () => {
    assert.equal(isRetriable({ code: '252' }), true, 'TOO_MANY_PARTS');
    assert.equal(isRetriable({ code: '60' }), false, 'UNKNOWN_TABLE');
    assert.equal(isRetriable({ code: 'CHDB_QUERY', clickhouseCode: 252 }), true, 'the embedded engine\'s TOO_MANY_PARTS');
    assert.equal(isRetriable({ code: 'CHDB_QUERY', clickhouseCode: 60 }), false, 'the embedded engine\'s UNKNOWN_TABLE');
    assert.equal(isRetriable({ name: 'KafkaJSNumberOfRetriesExceeded', retriable: false }), false);
  });
});

describe('describing errors', () => {
  it('gives the first line of the message, and the error\'s name when it has none', () => {
    assert.equal(describeError(new Error('Code: 60. DB::Exception: Unknown table\nStack trace: …')), 'Code: 60. DB::Exception: Unknown table');
    assert.equal(describeError(new TypeError('')), 'TypeError');
    assert.equal(describeError('a string'), 'a string');
  });
  it('gives an HTML page\'s title, where a proxy\'s error page stands in for an answer', () => {
    const page = '<!DOCTYPE html>\n<html>\n<head><title> 504 Gateway Time-out </title></head>\n<body><h1>504</h1></body>\n</html>';
    assert.equal(describeError(new Error(page)), 'an HTML page answered: 504 Gateway Time-out');
    assert.equal(describeError(new Error('a message that quotes <title>x</title>')), 'a message that quotes <title>x</title>');
  });
});
